// The storage probe's cost on the hot path: every Mount now waits for a probe that started
// after it arrived (statfs of the root plus a read of /proc/self/mountinfo; concurrent
// Mounts share one). Two plugins on one bindfs root, `--mount-check mountpoint` and
// `--mount-check none`, take the same Get+Mount+Unmount load in alternating rounds; the
// difference is the probe's cost.

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { callOnce, isSuccess } from "./client.ts";
import { HOT_LABELS, hotScript } from "./hot-script.ts";
import { closedLoop, type LoadResult, mergeRuns } from "./load.ts";
import { pluginArgv, serve, type Served, spawnTracked, stop } from "./procs.ts";

export interface ProbeOptions {
  rounds: number;
  windowMs: number;
  warmupMs: number;
}

async function runArgv(argv: string[], logPath: string, mayFail = false): Promise<void> {
  const code = await spawnTracked(argv, logPath).exited;
  if (code !== 0 && !mayFail) throw new Error(`${argv.join(" ")} exited with ${code}`);
}

export async function probeWorkload(
  tmp: string,
  options: ProbeOptions,
  figure: (name: string, value: number, unit: string, floor?: number) => void,
  say: (line: string) => void,
): Promise<void> {
  const source = join(tmp, "probe/backing");
  const root = join(tmp, "probe/root");
  mkdirSync(source, { recursive: true });
  mkdirSync(root, { recursive: true });
  if (Bun.which("bindfs") === null) {
    say("# probe: skipped (bindfs is not installed)");
    return;
  }
  await runArgv(["bindfs", source, root], join(tmp, "probe/bindfs.log"));
  const plugins: Record<"mountpoint" | "none", Served | undefined> = { mountpoint: undefined, none: undefined };
  try {
    for (const mode of ["mountpoint", "none"] as const) {
      const dirs = { volumes: root, state: join(tmp, `probe/state-${mode}`), socket: join(tmp, `probe/${mode}.sock`) };
      plugins[mode] = await serve([...pluginArgv(dirs), "--mount-check", mode], dirs.socket, join(tmp, `probe/${mode}.log`));
    }
    // A local root's index is each plugin's own: both learn the volumes by Create.
    for (const served of [plugins.mountpoint!, plugins.none!]) {
      for (let i = 0; i < 8; i++) {
        const reply = await callOnce(served.socket, "VolumeDriver.Create", { Name: `hot-${i}`, Opts: {} });
        if (!isSuccess(reply)) throw new Error(`probe setup Create failed: ${reply.body.toString()}`);
      }
    }
    for (const connections of [8, 1]) {
      const results: Record<"mountpoint" | "none", LoadResult[]> = { mountpoint: [], none: [] };
      for (let round = 0; round < options.rounds; round++) {
        for (const mode of ["mountpoint", "none"] as const) {
          results[mode].push(
            await closedLoop(plugins[mode]!.socket, hotScript, { connections, warmupMs: options.warmupMs, durationMs: options.windowMs, labels: HOT_LABELS }),
          );
        }
      }
      const probed = mergeRuns(results.mountpoint, HOT_LABELS);
      const unprobed = mergeRuns(results.none, HOT_LABELS);
      const mountOf = (r: LoadResult) => r.perLabel.find((label) => label.label === "Mount")?.p50 ?? Number.NaN;
      figure(`probe.p${connections}.throughput`, probed.rps, "req/s", unprobed.rps);
      figure(`probe.p${connections}.mount.p50`, mountOf(probed), "ms", mountOf(unprobed));
      figure(`probe.p${connections}.mount.p50_added`, mountOf(probed) - mountOf(unprobed), "ms");
    }
  } finally {
    for (const served of Object.values(plugins)) if (served) await stop(served.proc);
    await runArgv(["umount", "-l", root], join(tmp, "probe/umount.log"), true);
  }
}
