// `npm run bench` (= `bun bench/run.ts`): the comparison with a Go plugin on the engine's
// own client (bench/versus-go.ts), then every workload of the benchmark, one line per
// figure (`name value unit [ratio-to-floor]`), and bench/results.json. See bench/README.md.
//
//   bun bench/run.ts [--no-engine] [--no-build] [--quick] [--only=go,startup,hot,crud,list,memory,engine]
//                    [--go=hot,crud,activated,list,startup,rss] [--soak[=MINUTES]] [--binary=PATH] [--results=PATH]
//                    [--scope=local|global]
//
// --no-build   measure dist/docker-quobyte-plugin as it is (default: `bun run build` first)
// --binary     measure another build (e.g. of a change under test); implies --no-build
// --quick      shorter windows and sizes (a smoke run; figures are not comparable)
// --soak       only the soak run (default 10 minutes): flat CPU per call, no growth (bench/soak.ts)
// --scope      serve with --scope global to measure with mount claims on (default: the plugin's default)
//
// ratio-to-floor = the plugin's figure / the floor's figure for the same workload and
// metric. The floor is a bare Bun.serve on a Unix socket answering a constant body, run
// as its own process under the same bun binary (bench/floor-server.ts; compiled with
// `bun build --compile` for the startup and RSS figures; answering the very bytes of the
// plugin's List reply for the List figures). For throughput 1.0 means "as fast as the
// floor"; for times, CPU and sizes 1.0 means "as small". For the engine figures the
// "floor" is Docker's built-in `local` driver.

import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { cpus, release, totalmem } from "node:os";
import { join } from "node:path";
import { callOnce, Connection, engineRequest, isSuccess } from "./client.ts";
import { engineWorkload } from "./engine.ts";
import { CRUD_LABELS, crudScript, hex, HOT_LABELS, hotScript } from "./hot-script.ts";
import { probeWorkload } from "./probe.ts";
import { soak } from "./soak.ts";
import { GO_PARTS, type GoPart, type TargetLine, versusGo } from "./versus-go.ts";
import { closedLoop, type LoadResult, mergeRuns, type Script } from "./load.ts";
import { populate } from "./populate.ts";
import { BUN, compileFloor, cpuMicros, pluginBinary, procStatusKb, REPO, type Served, serve, setPluginBinary, setPluginScope, startFloor, startPlugin, stop, stopAll } from "./procs.ts";
import { median, percentile, sorted } from "./stats.ts";

const WORKLOADS = ["go", "startup", "hot", "crud", "list", "memory", "probe", "engine"] as const;
type Workload = (typeof WORKLOADS)[number];

const argv = process.argv.slice(2);
for (const arg of argv) {
  if (!/^--(no-engine|no-build|quick|soak(=\d+(\.\d+)?)?|only=[a-z,]+|go=[a-z,]+|binary=.+|results=.+|scope=(local|global))$/.test(arg)) {
    process.stderr.write(
      `unknown argument ${arg}\nusage: bun bench/run.ts [--no-engine] [--no-build] [--quick] [--only=${WORKLOADS.join(",")}] [--go=${GO_PARTS.join(",")}] [--soak[=MINUTES]] [--binary=PATH] [--results=PATH] [--scope=local|global]\n`,
    );
    process.exit(2);
  }
}
const quick = argv.includes("--quick");
/** Another build of the plugin (to compare a change); implies --no-build. */
const binary = argv.find((arg) => arg.startsWith("--binary="))?.slice(9);
if (binary) setPluginBinary(binary);
const scope = argv.find((arg) => arg.startsWith("--scope="))?.slice(8);
if (scope === "local" || scope === "global") setPluginScope(scope);
const resultsPath = argv.find((arg) => arg.startsWith("--results="))?.slice(10) ?? join(import.meta.dir, "results.json");
const only = argv.find((arg) => arg.startsWith("--only="))?.slice(7).split(",");
/** Some parts of the comparison with Go only (`--go=hot,list`); default all. */
const goParts = argv.find((arg) => arg.startsWith("--go="))?.slice(5).split(",") as GoPart[] | undefined;
if (goParts?.some((part) => !GO_PARTS.includes(part))) {
  process.stderr.write(`--go takes some of ${GO_PARTS.join(",")}\n`);
  process.exit(2);
}
/** `--soak[=10]`: only the soak run, this many minutes (bench/soak.ts). */
const soakArg = argv.find((arg) => arg === "--soak" || arg.startsWith("--soak="));
const soakMinutes = soakArg === undefined ? undefined : soakArg === "--soak" ? 10 : Number(soakArg.slice(7));
const isRoot = process.getuid?.() === 0;
const wants = (workload: Workload): boolean => soakMinutes === undefined && (only ? only.includes(workload) : true);

/**
 * Throughput runs alternate plugin and floor in ROUNDS rounds of WINDOW ms each (after
 * WARMUP ms), so that a noisy neighbour or a frequency change hits both alike; the figure
 * is the median over the rounds.
 */
const ROUNDS = quick ? 3 : 5;
const WINDOW = quick ? 500 : 1000;
const WARMUP = quick ? 200 : 300;
const LIST_SIZES = quick ? [1000, 10000] : [1000, 10000, 50000];
const LIST_CALLS = 20;
const CREATES = 200;
const STARTS = 10;
const ENGINE_RUNS = quick ? 6 : 24;
const MEMORY_REQUESTS = 100_000;

interface Figure {
  name: string;
  value: number;
  unit: string;
  ratio?: number;
  floor?: number;
}

const figures: Figure[] = [];
/** The targets against the Go reference (bench/versus-go.ts), measured first. */
let goTargets: TargetLine[] = [];
const notes: string[] = [];
const extra: Record<string, unknown> = {};

function fmt(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (abs >= 1000) return value.toFixed(0);
  if (abs >= 100) return value.toFixed(1);
  if (abs >= 10) return value.toFixed(2);
  return value.toFixed(3);
}

function figure(name: string, value: number, unit: string, floor?: number): void {
  const ratio = floor === undefined ? undefined : value / floor;
  figures.push({ name, value, unit, ...(floor === undefined ? {} : { floor, ratio }) });
  process.stdout.write(`${name} ${fmt(value)} ${unit}${ratio === undefined ? "" : ` ${ratio.toFixed(3)}`}\n`);
}

function say(line: string): void {
  notes.push(line);
  process.stdout.write(`${line}\n`);
}

function machine(): Record<string, unknown> {
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? cpus()[0]?.model ?? "unknown";
  const mounts = readFileSync("/proc/mounts", "utf8").split("\n").map((line) => line.split(" "));
  const tmpMount = mounts.filter((m) => m[1] === "/tmp").at(-1) ?? mounts.filter((m) => m[1] === "/").at(-1);
  let os = "";
  try {
    os = /^PRETTY_NAME="?(.*?)"?$/m.exec(readFileSync("/etc/os-release", "utf8"))?.[1] ?? "";
  } catch {}
  return {
    loadAverageAtStart: readFileSync("/proc/loadavg", "utf8").trim(),
    nproc: navigator.hardwareConcurrency,
    cpu: model,
    kernel: release(),
    os,
    memoryMiB: Math.round(totalmem() / 2 ** 20),
    bun: Bun.version,
    tmpFilesystem: tmpMount ? `${tmpMount[2]} (${tmpMount[0]} on ${tmpMount[1]})` : "unknown",
  };
}

/** Identifies the src/ tree measured (others edit it concurrently; no git involved). */
function srcDigest(): string {
  const hash = new Bun.CryptoHasher("sha256");
  const files = [...new Bun.Glob("src/**/*.ts").scanSync({ cwd: REPO })].sort();
  for (const file of files) {
    hash.update(file);
    hash.update(readFileSync(join(REPO, file)));
  }
  return hash.digest("hex").slice(0, 12);
}

// ---------------------------------------------------------------------------
// Scripts: the requests each connection sends, round and round.


function singleScript(method: string, body: (connection: number) => unknown): (connection: number) => Script {
  return (connection) => ({ requests: [engineRequest(method, body(connection))], labels: [0] });
}

function mountUnmountScript(connection: number): Script {
  const name = `hot-${connection}`;
  const id = hex(32);
  return {
    requests: [engineRequest("VolumeDriver.Mount", { Name: name, ID: id }), engineRequest("VolumeDriver.Unmount", { Name: name, ID: id })],
    labels: [0, 1],
  };
}

/** A load result without its raw samples, for results.json. */
function brief(result: LoadResult & { roundRps?: number[] }): Record<string, unknown> {
  const { samples: _samples, labelSamples: _labels, ...rest } = result;
  return rest;
}

// ---------------------------------------------------------------------------

async function main(): Promise<void> {
  const wallStart = performance.now();
  if (!argv.includes("--no-build") && !binary) {
    const build = Bun.spawnSync([BUN, "run", "build"], { cwd: REPO, stdout: "pipe", stderr: "pipe" });
    if (build.exitCode !== 0) throw new Error(`bun run build failed:\n${build.stderr.toString()}${build.stdout.toString()}`);
  }
  const info = machine();
  say(`# machine: ${info.nproc} cores, ${info.cpu}, kernel ${info.kernel}, ${info.os}, bun ${info.bun}, /tmp on ${info.tmpFilesystem}`);

  const tmp = mkdtempSync("/tmp/dqp-bench-");
  const results: Record<string, unknown> = {
    startedAt: new Date().toISOString(),
    machine: info,
    args: argv,
    binary: pluginBinary(),
    srcDigest: binary ? undefined : srcDigest(),
  };
  say(`# plugin: ${pluginBinary()}${binary ? "" : ` built from src/ (digest ${results.srcDigest as string})`}`);
  let floorSmall: Served | undefined;
  let plugin: Served | undefined;
  let totalSent = 0;
  try {
    if (soakMinutes !== undefined) goTargets = await soak(soakMinutes, tmp, { figure, say });
    // ---- against the Go reference on dockerd's own client, the floor as second reference
    if (wants("go")) goTargets = await versusGo({ quick, tmp, parts: goParts }, { figure, say });

    // ---- binary size, startup (fresh process each time, nothing else running)
    figure("binary.size", statSync(pluginBinary()).size / 2 ** 20, "MiB");
    let compiledFloor: string | undefined;
    if (wants("startup") || wants("memory")) {
      compiledFloor = compileFloor(join(tmp, "floor-compiled"));
      figure("floor.binary.size", statSync(compiledFloor).size / 2 ** 20, "MiB");
    }
    if (wants("startup")) {
      const pluginMs: number[] = [];
      const floorMs: number[] = [];
      const floorIdle: number[] = [];
      for (let i = 0; i < STARTS; i++) {
        // Same volume root and state each time: a restart, as after a reboot or upgrade.
        const started = await startPlugin({
          volumes: join(tmp, "s/volumes"),
          state: join(tmp, "s/state"),
          socket: join(tmp, "s.sock"),
          logPath: join(tmp, "startup.log"),
        });
        pluginMs.push(started.readyMs);
        await stop(started.proc);
        const floor = await serve([compiledFloor as string, join(tmp, "f.sock")], join(tmp, "f.sock"), join(tmp, "floor.log"));
        floorMs.push(floor.readyMs);
        if (i === 0) {
          await Bun.sleep(1000);
          floorIdle.push(procStatusKb(floor.pid, "VmRSS"));
        }
        await stop(floor.proc);
      }
      // Where startup goes: exec + runtime + evaluating the whole bundle (`--version`
      // imports every module, then exits) versus the service's own initialisation.
      const versionMs: number[] = [];
      for (let i = 0; i < STARTS; i++) {
        const started = performance.now();
        const proc = Bun.spawn([pluginBinary(), "--version"], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
        await proc.exited;
        versionMs.push(performance.now() - started);
      }
      figure("startup.median", median(pluginMs), "ms", median(floorMs));
      figure("startup.exec_version.median", median(versionMs), "ms", median(floorMs));
      figure("startup.max", Math.max(...pluginMs), "ms");
      figure("floor.startup.median", median(floorMs), "ms");
      extra.startup = { pluginMs, floorCompiledMs: floorMs, versionMs };
      if (floorIdle[0] !== undefined) extra.floorIdleRssKb = floorIdle[0];
    }

    // ---- the long-lived plugin and floor for hot / crud / memory
    floorSmall = await startFloor(join(tmp, "floor.sock"), join(tmp, "floor.log"));
    plugin = await startPlugin({
      volumes: join(tmp, "hot/volumes"),
      state: join(tmp, "hot/state"),
      socket: join(tmp, "p.sock"),
      logPath: join(tmp, "plugin.log"),
    });
    const pluginSock = plugin.socket;
    const floorSock = floorSmall.socket;
    if (wants("memory")) {
      await Bun.sleep(1000);
      const floorIdleKb = (extra.floorIdleRssKb as number | undefined) ?? undefined;
      figure("memory.rss.idle", procStatusKb(plugin.pid, "VmRSS") / 1024, "MiB", floorIdleKb === undefined ? undefined : floorIdleKb / 1024);
      figure("floor.memory.rss.idle", procStatusKb(floorSmall.pid, "VmRSS") / 1024, "MiB");
    }
    for (let i = 0; i < 8; i++) {
      const reply = await callOnce(pluginSock, "VolumeDriver.Create", { Name: `hot-${i}`, Opts: {} });
      if (!isSuccess(reply)) throw new Error(`setup Create failed: ${reply.body.toString()}`);
    }

    const pidOf = (sock: string) => (sock === pluginSock ? (plugin as Served).pid : (floorSmall as Served).pid);
    const run = async (sock: string, script: (c: number) => Script, connections: number, labels: string[], durationMs = WINDOW) => {
      const cpuBefore = cpuMicros(pidOf(sock));
      const result = await closedLoop(sock, script, { connections, warmupMs: WARMUP, durationMs, labels });
      const cpu = cpuMicros(pidOf(sock)) - cpuBefore;
      if (sock === pluginSock) totalSent += result.sent;
      return Object.assign(result, { cpu });
    };
    /** Plugin and floor, alternating for ROUNDS rounds; each merged over its rounds. */
    const compare = async (script: (c: number) => Script, connections: number, labels: string[], rounds = ROUNDS, windowMs = WINDOW) => {
      const mine: LoadResult[] = [];
      const floor: LoadResult[] = [];
      for (let round = 0; round < rounds; round++) {
        mine.push(await run(pluginSock, script, connections, labels, windowMs));
        floor.push(await run(floorSock, script, connections, labels, windowMs));
      }
      // Server CPU per request (all threads, warm-up included): steadier than throughput
      // when other work shares the machine.
      const cpuPerRequest = (runs: LoadResult[]) =>
        runs.reduce((n, r) => n + ((r as LoadResult & { cpu: number }).cpu ?? 0), 0) / runs.reduce((n, r) => n + r.sent, 0);
      return {
        mine: Object.assign(mergeRuns(mine, labels), { cpuPerRequest: cpuPerRequest(mine) }),
        floor: Object.assign(mergeRuns(floor, labels), { cpuPerRequest: cpuPerRequest(floor) }),
      };
    };
    const report = (prefix: string, result: LoadResult & { cpuPerRequest: number }, floor?: LoadResult & { cpuPerRequest: number }) => {
      figure(`${prefix}.throughput`, result.rps, "req/s", floor?.rps);
      figure(`${prefix}.cpu_per_request`, result.cpuPerRequest, "us", floor?.cpuPerRequest);
      figure(`${prefix}.p50`, result.p50, "ms", floor?.p50);
      figure(`${prefix}.p99`, result.p99, "ms", floor?.p99);
      if (result.perLabel.length > 1) {
        for (const label of result.perLabel) figure(`${prefix}.${label.label}.p50`, label.p50, "ms");
      }
      if (floor) {
        figure(`floor.${prefix}.throughput`, floor.rps, "req/s");
        figure(`floor.${prefix}.p99`, floor.p99, "ms");
      }
    };

    if (wants("hot")) {
      for (const connections of [8, 1]) {
        const { mine, floor } = await compare(hotScript, connections, HOT_LABELS);
        report(`hot.p${connections}`, mine, floor);
        extra[`hot.p${connections}`] = { plugin: brief(mine), floor: brief(floor) };
      }
      // Where the time goes: the same P=8 load on cheaper endpoints of the same process.
      const breakdown: [string, (c: number) => Script][] = [
        ["Plugin.Activate", singleScript("Plugin.Activate", () => undefined)],
        ["Capabilities", singleScript("VolumeDriver.Capabilities", () => ({}))],
        ["Get", singleScript("VolumeDriver.Get", (c) => ({ Name: `hot-${c}` }))],
        ["Mount+Unmount", mountUnmountScript],
      ];
      for (const [name, script] of breakdown) {
        const labels = ["a", "b"].slice(0, script(0).requests.length);
        const { mine, floor } = await compare(script, 8, labels, 3, quick ? 400 : 700);
        figure(`breakdown.p8.${name}.throughput`, mine.rps, "req/s", floor.rps);
        figure(`breakdown.p8.${name}.p50`, mine.p50, "ms", floor.p50);
        figure(`breakdown.p8.${name}.cpu_per_request`, mine.cpuPerRequest, "us", floor.cpuPerRequest);
        extra[`breakdown.${name}`] = { plugin: brief(mine), floor: brief(floor) };
      }
    }

    if (wants("crud")) {
      const { mine, floor } = await compare(crudScript, 8, CRUD_LABELS);
      report("crud.p8", mine, floor);
      figure("crud.p8.cycles", mine.rps / CRUD_LABELS.length, "cycles/s");
      extra["crud.p8"] = { plugin: brief(mine), floor: brief(floor) };
    }

    if (wants("memory")) {
      if (totalSent < MEMORY_REQUESTS) {
        const topUp = await closedLoop(pluginSock, hotScript, {
          connections: 8,
          warmupMs: 0,
          durationMs: 120_000,
          labels: HOT_LABELS,
          stopAfter: MEMORY_REQUESTS - totalSent,
        });
        totalSent += topUp.sent;
      }
      await Bun.sleep(500);
      figure("memory.rss.after_100k_requests", procStatusKb(plugin.pid, "VmRSS") / 1024, "MiB");
      figure("memory.rss.peak", procStatusKb(plugin.pid, "VmHWM") / 1024, "MiB");
      extra.memoryRequests = totalSent;
    }
    await stop(plugin.proc);
    await stop(floorSmall.proc);

    if (wants("list")) await listWorkload(tmp);
    if (wants("probe")) {
      if (!isRoot) say("# probe: skipped (bindfs needs root)");
      else await probeWorkload(tmp, { rounds: 3, windowMs: quick ? 400 : 800, warmupMs: WARMUP }, figure, say);
    }

    if (wants("engine")) {
      if (argv.includes("--no-engine")) say("# engine: skipped (--no-engine)");
      else if (!isRoot) say("# engine: skipped (needs root; pass --no-engine to silence)");
      else {
        const engine = await engineWorkload(ENGINE_RUNS, say);
        figure("engine.docker_run.plugin.median", engine.pluginMedian, "ms", engine.localMedian);
        figure("engine.docker_run.local.median", engine.localMedian, "ms");
        figure("engine.docker_run.plugin.p90", engine.pluginP90, "ms", engine.localP90);
        figure("engine.docker_run.local.p90", engine.localP90, "ms");
        figure("engine.docker_run.paired_diff.median", engine.pairedDiffMedian, "ms");
        extra.engine = engine;
      }
    }
  } finally {
    await stopAll();
    rmSync(tmp, { recursive: true, force: true });
  }

  const wallSeconds = (performance.now() - wallStart) / 1000;
  (results.machine as Record<string, unknown>).loadAverageAtEnd = readFileSync("/proc/loadavg", "utf8").trim();
  const targets = [...goTargets, ...evaluateTargets()];
  say("# targets");
  for (const t of targets) say(`# ${t.met === undefined ? "n/a" : t.met ? "MET" : "NOT MET"}: ${t.target} (measured ${t.measured})`);
  say(`# wall time ${wallSeconds.toFixed(1)} s`);
  writeFileSync(
    resultsPath,
    `${JSON.stringify({ ...results, wallSeconds, figures, targets, notes, details: extra }, null, 2)}\n`,
  );
}

async function listWorkload(tmp: string): Promise<void> {
  const root = join(tmp, "l/volumes");
  const listPerVolume: Record<number, number> = {};
  const createMedian: Record<number, number> = {};
  let populated = 0;
  for (const size of LIST_SIZES) {
    const t0 = performance.now();
    populate(root, populated, size);
    populated = size;
    say(`# list: ${size} volumes populated in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const plugin = await startPlugin({ volumes: root, state: join(tmp, "l/state"), socket: join(tmp, "l.sock"), logPath: join(tmp, "list.log") });
    let floor: Served | undefined;
    try {
      figure(`startup.with_${size / 1000}k_volumes`, plugin.readyMs, "ms");
      const conn = await Connection.open(plugin.socket);
      const listRequest = engineRequest("VolumeDriver.List", {});
      const times: number[] = [];
      let body: Buffer = Buffer.alloc(0);
      try {
        for (let i = 0; i < LIST_CALLS + 2; i++) {
          const started = performance.now();
          const reply = await conn.send(listRequest);
          const ms = performance.now() - started;
          if (!isSuccess(reply)) throw new Error(`List failed: ${reply.body.toString().slice(0, 300)}`);
          if (i >= 2) times.push(ms);
          body = reply.body;
        }
        const volumes = (JSON.parse(body.toString("utf8")) as { Volumes: unknown[] }).Volumes.length;
        if (volumes !== size) throw new Error(`List returned ${volumes} volumes, expected ${size}`);

        // The floor for this size: a bare server answering the same bytes.
        const bodyFile = join(tmp, `list-${size}.json`);
        writeFileSync(bodyFile, body);
        floor = await startFloor(join(tmp, "lf.sock"), join(tmp, "floor.log"), bodyFile);
        const floorConn = await Connection.open(floor.socket);
        const floorTimes: number[] = [];
        for (let i = 0; i < LIST_CALLS + 2; i++) {
          const started = performance.now();
          await floorConn.send(listRequest);
          if (i >= 2) floorTimes.push(performance.now() - started);
        }
        floorConn.close();
        const label = `${size / 1000}k`;
        figure(`list.${label}.median`, median(times), "ms", median(floorTimes));
        figure(`floor.list.${label}.median`, median(floorTimes), "ms");
        figure(`list.${label}.reply_size`, body.length / 2 ** 20, "MiB");
        listPerVolume[size] = median(times) / size;

        // What one List costs the plugin in total once it has been idle for a while: a
        // List may start background work (re-reading the metadata of a shared root), which
        // the reply time above does not show. CPU of the whole process until it is quiet.
        await Bun.sleep(2100);
        const cpuBefore = cpuMicros(plugin.pid);
        const started = performance.now();
        const again = await conn.send(listRequest);
        const afterIdleMs = performance.now() - started;
        if (!isSuccess(again)) throw new Error(`List failed: ${again.body.toString().slice(0, 300)}`);
        let last = cpuMicros(plugin.pid);
        for (let quiet = 0, polls = 0; quiet < 2 && polls < 40; polls++) {
          await Bun.sleep(150);
          const now = cpuMicros(plugin.pid);
          quiet = now === last ? quiet + 1 : 0;
          last = now;
        }
        figure(`list.${label}.after_idle`, afterIdleMs, "ms");
        figure(`list.${label}.total_cpu_after_idle`, (last - cpuBefore) / 1000, "ms");

        // Create cost at this size (sequential, like `docker volume create` in a loop).
        const creates: number[] = [];
        const gets: number[] = [];
        const removes: number[] = [];
        for (let j = 0; j < CREATES; j++) {
          const name = `new-${size}-${j}`;
          let started = performance.now();
          const created = await conn.send(engineRequest("VolumeDriver.Create", { Name: name, Opts: {} }));
          creates.push(performance.now() - started);
          if (!isSuccess(created)) throw new Error(`Create failed: ${created.body.toString()}`);
          started = performance.now();
          await conn.send(engineRequest("VolumeDriver.Get", { Name: name }));
          gets.push(performance.now() - started);
        }
        for (let j = 0; j < CREATES; j++) {
          const started = performance.now();
          const removed = await conn.send(engineRequest("VolumeDriver.Remove", { Name: `new-${size}-${j}` }));
          removes.push(performance.now() - started);
          if (!isSuccess(removed)) throw new Error(`Remove failed: ${removed.body.toString()}`);
        }
        figure(`create.at_${label}.median`, median(creates), "ms");
        figure(`create.at_${label}.p99`, percentile(sorted(creates), 99), "ms");
        figure(`get.at_${label}.median`, median(gets), "ms");
        figure(`remove.at_${label}.median`, median(removes), "ms");
        createMedian[size] = median(creates);
        extra[`list.${label}`] = { listMs: times, floorMs: floorTimes, createMs: creates, getMs: gets, removeMs: removes };
      } finally {
        conn.close();
      }
    } finally {
      if (floor) await stop(floor.proc);
      await stop(plugin.proc);
    }
  }
  extra.listPerVolumeMs = listPerVolume;
  extra.createMedianMs = createMedian;
}

type Target = TargetLine;

function evaluateTargets(): Target[] {
  const get = (name: string) => figures.find((f) => f.name === name);
  const targets: Target[] = [];
  const hot = get("hot.p8.throughput");
  const p99 = get("hot.p8.p99");
  if (hot?.ratio !== undefined && p99) {
    targets.push({
      target: "hot path (Get+Mount+Unmount, P=8) throughput >= 0.70 of the floor",
      measured: `${fmt(hot.value)} req/s = ${hot.ratio.toFixed(3)} of ${fmt(hot.floor as number)}`,
      met: hot.ratio >= 0.7,
    });
    targets.push({ target: "hot path p99 <= 2 ms at P=8", measured: `${fmt(p99.value)} ms`, met: p99.value <= 2 });
  }
  const list10k = get("list.10k.median");
  if (list10k) targets.push({ target: "List of 10,000 volumes <= 20 ms median", measured: `${fmt(list10k.value)} ms`, met: list10k.value <= 20 });
  const startup = get("startup.median");
  if (startup) targets.push({ target: "startup to socket-ready <= 60 ms median", measured: `${fmt(startup.value)} ms`, met: startup.value <= 60 });
  const idle = get("memory.rss.idle");
  if (idle) targets.push({ target: "idle RSS <= 60 MB", measured: `${fmt(idle.value)} MiB = ${fmt((idle.value * 2 ** 20) / 1e6)} MB`, met: (idle.value * 2 ** 20) / 1e6 <= 60 });
  const engine = get("engine.docker_run.plugin.median");
  if (engine?.ratio !== undefined) {
    targets.push({
      target: "docker run with the plugin <= 1.05x the local driver (median)",
      measured: `${fmt(engine.value)} ms vs ${fmt(engine.floor as number)} ms = ${engine.ratio.toFixed(3)}x`,
      met: engine.ratio <= 1.05,
    });
  }
  const sizes = LIST_SIZES.filter((size) => get(`list.${size / 1000}k.median`));
  if (sizes.length >= 2) {
    const small = sizes[0] as number;
    const large = sizes.at(-1) as number;
    const l1 = get(`list.${small / 1000}k.median`)?.value as number;
    const l2 = get(`list.${large / 1000}k.median`)?.value as number;
    const c1 = get(`create.at_${small / 1000}k.median`)?.value as number;
    const c2 = get(`create.at_${large / 1000}k.median`)?.value as number;
    // Linear or better: per-volume List cost must not grow by more than 25 % from the
    // smallest to the largest size; Create must stay flat (within 25 %, fsync noise).
    const perVolume = l2 / large / (l1 / small);
    targets.push({
      target: `List cost linear or better in the volume count (per-volume cost at ${large / 1000}k <= 1.25x that at ${small / 1000}k)`,
      measured: `${fmt((l1 / small) * 1000)} -> ${fmt((l2 / large) * 1000)} us per volume (${perVolume.toFixed(2)}x)`,
      met: perVolume <= 1.25,
    });
    targets.push({
      target: `Create cost does not grow with the volume count (median at ${large / 1000}k <= 1.25x that at ${small / 1000}k)`,
      measured: `${fmt(c1)} -> ${fmt(c2)} ms (${(c2 / c1).toFixed(2)}x)`,
      met: c2 / c1 <= 1.25,
    });
  }
  return targets;
}

let interrupted = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`\n${signal}: stopping every process the bench started\n`);
    void stopAll().finally(() => process.exit(130));
  });
}

try {
  await main();
} catch (error) {
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
} finally {
  await stopAll();
}
// Everything we started is stopped by now; the e2e harness leaves a 20 s grace timer
// pending after dockerd exits, which would otherwise keep this process alive.
process.exit();
