// bench/scale: N instances of the compiled binary on one fake Quobyte API. Creates
// volumes round robin, then: Gets from other hosts, the same Gets within the TTL, a Get
// mix on stale caches, Mount/Unmount pairs, an idle minute with mounts held, and a
// cluster-wide restart. Counts the API's calls per host, per method and per operation.
//
//   bun bench/scale/run.ts [--instances 40] [--volumes 80] [--idle 60] [--cache-ttl 10]
//                          [--json FILE] [--check]
//   (--instances 200 for the large run; --check exits 1 when a budget is broken)

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stopAll } from "../procs.ts";
import { type BudgetRow, checkBudget } from "./budget.ts";
import { Cluster } from "./cluster.ts";
import { createRoundRobin, getMix, getsFromOthers, holdMounts, idle, mountPairs, type PhaseResult, restart, type RestartResult } from "./phases.ts";

export interface ScaleOptions {
  instances: number;
  volumes: number;
  idleSeconds: number;
  cacheTtlSeconds: number;
  mountPairsPerHost: number;
  heldPerHost: number;
  seed: number;
}

export interface ScaleReport {
  options: ScaleOptions;
  startMs: { median: number; max: number };
  phases: PhaseResult[];
  restart: RestartResult;
  /** VmRSS of every instance after the idle phase (MB). */
  rssMb: number[];
  /** Requests answered with an Err, by endpoint and code (none on a machine that keeps up). */
  errors: Record<string, number>;
  budget: BudgetRow[];
  wallSeconds: number;
}

export const DEFAULT_SCALE: ScaleOptions = {
  instances: 40,
  volumes: 80,
  idleSeconds: 60,
  cacheTtlSeconds: 10,
  mountPairsPerHost: 6,
  heldPerHost: 3,
  seed: 0x5ca1e,
};

export async function runScale(options: ScaleOptions, progress: (line: string) => void = () => {}): Promise<ScaleReport> {
  const began = performance.now();
  const dir = mkdtempSync(join(tmpdir(), "dqp-scale-"));
  let cluster: Cluster | undefined;
  try {
    const ttlMs = options.cacheTtlSeconds * 1000;
    progress(`starting ${options.instances} instances`);
    cluster = await Cluster.start({ dir, instances: options.instances, cacheTtlSeconds: options.cacheTtlSeconds, startConcurrency: 8 });
    const startTimes = cluster.hosts.map((host) => host.served?.readyMs ?? 0).sort((a, b) => a - b);
    const phases: PhaseResult[] = [];
    const run = async (result: Promise<PhaseResult>) => {
      const done = await result;
      phases.push(done);
      progress(`${done.name}: ${done.calls} API calls for ${done.ops} ${done.op}(s) in ${done.seconds.toFixed(1)} s`);
    };
    await run(createRoundRobin(cluster, options.volumes));
    await run(holdMounts(cluster, options.volumes, options.heldPerHost));
    for (const result of await getsFromOthers(cluster, options.volumes, options.heldPerHost)) await run(Promise.resolve(result));
    await Bun.sleep(ttlMs + 200); // every cache is stale now
    await run(getMix(cluster, options.volumes, ttlMs, options.seed));
    await run(mountPairs(cluster, options.volumes, ttlMs, options.mountPairsPerHost, options.seed));
    await run(idle(cluster, options.idleSeconds));
    const rssMb = cluster.hosts.map((host) => host.rssMb());
    progress(`RSS max ${Math.max(...rssMb).toFixed(1)} MB`);
    progress("cluster-wide restart");
    const restarted = await restart(cluster, options.volumes, ttlMs);
    const report: ScaleReport = {
      options,
      startMs: { median: startTimes[startTimes.length >> 1] ?? 0, max: startTimes.at(-1) ?? 0 },
      phases,
      restart: restarted,
      rssMb,
      errors: {},
      budget: [],
      wallSeconds: 0,
    };
    for (const host of cluster.hosts) for (const [key, n] of host.errors) report.errors[key] = (report.errors[key] ?? 0) + n;
    report.budget = checkBudget(report);
    report.wallSeconds = (performance.now() - began) / 1000;
    return report;
  } finally {
    await cluster?.stop();
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
}


export function formatReport(report: ScaleReport): string {
  const lines: string[] = [];
  const o = report.options;
  lines.push(`bench/scale: ${o.instances} instances, ${o.volumes} volumes, cache TTL ${o.cacheTtlSeconds} s, idle ${o.idleSeconds} s (${report.wallSeconds.toFixed(0)} s wall)`);
  lines.push(`start to serving: median ${report.startMs.median.toFixed(0)} ms, max ${report.startMs.max.toFixed(0)} ms; after the restart: median ${report.restart.startMs.median.toFixed(0)} ms, max ${report.restart.startMs.max.toFixed(0)} ms`);
  lines.push("");
  lines.push(`| phase | ops | API calls | calls/op | per host min/mean/max | by method |`);
  lines.push(`|---|---:|---:|---:|---|---|`);
  for (const p of [...report.phases, report.restart.phase]) {
    const methods = Object.entries(p.byMethod).map(([m, n]) => `${m} ${n}`).join(", ") || "-";
    lines.push(`| ${p.name} | ${p.ops.toFixed(p.op === "host-minute" ? 2 : 0)} ${p.op} | ${p.calls} | ${p.callsPerOp.toFixed(3)} | ${p.perHost.min}/${p.perHost.mean.toFixed(2)}/${p.perHost.max} | ${methods} |`);
  }
  const errors = Object.entries(report.errors).map(([key, n]) => `${key} ${n}`).join(", ");
  lines.push("");
  lines.push(`requests answered with an Err: ${errors || "none"}`);
  lines.push("");
  lines.push("| budget (per host) | limit | measured | |");
  lines.push("|---|---|---|---|");
  for (const row of report.budget) lines.push(`| ${row.what} | ${row.limit} | ${row.measured} | ${row.ok ? "ok" : "**BROKEN**"} |`);
  return lines.join("\n");
}

function flag(args: string[], name: string): string | undefined {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : args.find((a) => a.startsWith(`${name}=`))?.slice(name.length + 1);
}

function positive(args: string[], name: string, fallback: number): number {
  const raw = flag(args, name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!(value > 0)) throw new Error(`${name} must be a positive number, not ${JSON.stringify(raw)}`);
  return value;
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  const options: ScaleOptions = {
    ...DEFAULT_SCALE,
    instances: positive(args, "--instances", DEFAULT_SCALE.instances),
    volumes: positive(args, "--volumes", DEFAULT_SCALE.volumes),
    idleSeconds: positive(args, "--idle", DEFAULT_SCALE.idleSeconds),
    cacheTtlSeconds: positive(args, "--cache-ttl", DEFAULT_SCALE.cacheTtlSeconds),
  };
  const stopOnSignal = () => void stopAll().finally(() => process.exit(130));
  process.on("SIGINT", stopOnSignal);
  process.on("SIGTERM", stopOnSignal);
  const report = await runScale(options, (line) => process.stderr.write(`[scale] ${line}\n`));
  console.log(formatReport(report));
  const json = flag(args, "--json");
  if (json) writeFileSync(json, `${JSON.stringify(report, null, 2)}\n`);
  else console.log(JSON.stringify(report));
  if (args.includes("--check") && report.budget.some((row) => !row.ok)) process.exit(1);
}
