// `docker run --rm -v VOL:/d IMG true` on a real dockerd, with a volume of the plugin
// against one of Docker's built-in `local` driver. Reuses the e2e harness: a private
// dockerd in a private mount namespace whose /run/docker/plugins is a fresh tmpfs; the
// plugin runs inside that namespace and is reached from outside through
// /proc/<holder pid>/root/run/docker/plugins/quobyte.sock.

import { closeSync, openSync, readFileSync } from "node:fs";
import {
  buildBusyboxImage,
  createWorkDir,
  type Engine,
  ensureEnginePackages,
  type Namespace,
  startEngine,
  startNamespace,
} from "../tests/e2e/support/engine.ts";
import { callOnce } from "./client.ts";
import { onCleanup, pluginBinary, stop } from "./procs.ts";
import { median, percentile, sorted } from "./stats.ts";

export interface EngineFigures {
  runs: number;
  pluginMs: number[];
  localMs: number[];
  pluginMedian: number;
  localMedian: number;
  pluginP90: number;
  localP90: number;
  /** Median over the ABBA pairs of (plugin run - local run): robust to slow drifts. */
  pairedDiffMedian: number;
  dockerVersion: string;
}

const SOCKET_IN_NS = "/run/docker/plugins/quobyte.sock";

export interface EngineOptions {
  /**
   * Runs the plugin with `--log-level debug --log-format json` and reports which requests
   * the engine made and how long the plugin took for them (not used by `npm run bench`:
   * the figures are taken at `--log-level warn`).
   */
  trace?: boolean;
}

export async function engineWorkload(
  runs: number,
  say: (line: string) => void,
  options: EngineOptions = {},
): Promise<EngineFigures & { requests?: Record<string, { count: number; totalMs: number }> }> {
  await ensureEnginePackages();
  const workDir = await createWorkDir();
  let ns: Namespace | undefined;
  let engine: Engine | undefined;
  let plugin: ReturnType<Namespace["spawn"]> | undefined;
  const pluginLog = `${workDir}/plugin.log`;
  let cleaned: Promise<void> | undefined;
  const cleanup = () =>
    (cleaned ??= (async () => {
      const t0 = performance.now();
      // dockerd first: it may still talk to the plugin while it shuts down.
      await engine?.destroy().catch((error) => say(`# engine: cleanup failed: ${String(error)}`));
      const t1 = performance.now();
      if (plugin) await stop(plugin);
      await ns?.stop().catch((error) => say(`# engine: namespace cleanup failed: ${String(error)}`));
      say(`# engine: dockerd stopped in ${((t1 - t0) / 1000).toFixed(1)} s, plugin and namespace in ${((performance.now() - t1) / 1000).toFixed(1)} s`);
    })());
  // Also run by the bench's SIGINT/SIGTERM handler.
  const unregister = onCleanup(cleanup);
  try {
    ns = await startNamespace(workDir);
    engine = await startEngine(ns, workDir);
    await buildBusyboxImage(engine);
    const dockerVersion = (await engine.docker(["version", "--format", "{{.Server.Version}}"])).stdout.trim();

    const fd = openSync(pluginLog, "a");
    try {
      plugin = ns.spawn(
        [
          pluginBinary(),
          "serve",
          "--backend",
          "posix",
          "--path",
          `${workDir}/volumes`,
          "--state-dir",
          `${workDir}/state`,
          "--socket",
          SOCKET_IN_NS,
          "--log-level",
          options.trace ? "debug" : "warn",
          ...(options.trace ? ["--log-format", "json"] : []),
        ],
        { stdout: fd, stderr: fd },
      );
    } finally {
      closeSync(fd);
    }
    const outside = `/proc/${ns.pid}/root${SOCKET_IN_NS}`;
    const deadline = Date.now() + 15_000;
    for (;;) {
      const ok = await callOnce(outside, "Plugin.Activate").then(
        (reply) => reply.status === 200,
        () => false,
      );
      if (ok) break;
      if (plugin.exitCode !== null || Date.now() > deadline) {
        throw new Error(`plugin did not start inside the namespace:\n${readFileSync(pluginLog, "utf8")}`);
      }
      await Bun.sleep(10);
    }

    const docker = async (...args: string[]): Promise<void> => {
      const result = await engine!.docker(args, { timeoutMs: 90_000 });
      if (result.code !== 0) {
        throw new Error(
          `docker ${args.join(" ")} exited ${result.code}: ${result.stderr.trim()}\n--- plugin log:\n${readFileSync(pluginLog, "utf8").slice(-2000)}`,
        );
      }
    };
    await docker("volume", "create", "-d", "quobyte", "benchq");
    await docker("volume", "create", "benchl");
    const image = engine.image;
    const timedRun = async (volume: string): Promise<number> => {
      const started = performance.now();
      await docker("run", "--rm", "--network", "none", "-v", `${volume}:/d`, image, "true");
      return performance.now() - started;
    };

    // Warm-up: image layers, the engine's plugin handle, page cache.
    for (let i = 0; i < 2; i++) {
      await timedRun("benchq");
      await timedRun("benchl");
    }
    const pluginMs: number[] = [];
    const localMs: number[] = [];
    // ABBA order, so neither driver always runs right after the other.
    for (let i = 0; i < runs; i++) {
      const order = i % 2 === 0 ? (["benchq", "benchl"] as const) : (["benchl", "benchq"] as const);
      for (const volume of order) (volume === "benchq" ? pluginMs : localMs).push(await timedRun(volume));
    }
    say(`# engine: docker ${dockerVersion}, ${runs} interleaved runs per driver`);
    let requests: Record<string, { count: number; totalMs: number }> | undefined;
    if (options.trace) {
      requests = {};
      for (const line of readFileSync(pluginLog, "utf8").split("\n")) {
        if (!line.startsWith("{")) continue;
        const entry = JSON.parse(line) as { endpoint?: string; ms?: number };
        if (!entry.endpoint) continue;
        const slot = (requests[entry.endpoint] ??= { count: 0, totalMs: 0 });
        slot.count++;
        slot.totalMs += entry.ms ?? 0;
      }
    }
    return {
      ...(requests ? { requests } : {}),
      runs,
      pluginMs,
      localMs,
      pluginMedian: median(pluginMs),
      localMedian: median(localMs),
      pluginP90: percentile(sorted(pluginMs), 90),
      localP90: percentile(sorted(localMs), 90),
      pairedDiffMedian: median(pluginMs.map((ms, i) => ms - (localMs[i] as number))),
      dockerVersion,
    };
  } finally {
    unregister();
    await cleanup();
  }
}
