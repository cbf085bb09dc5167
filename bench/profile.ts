// CPU profile of the plugin's hot path: runs `serve` FROM SOURCE under `bun --cpu-prof`
// (function names survive; the compiled binary is minified), drives the same P=8
// Get+Mount+Unmount load as `bench/run.ts` (or another workload), stops it with SIGTERM
// (the profile is written at exit) and prints the profile's summary. `crud` is the
// versus-Go crud cycle (Create, Get, Mount, Path, Unmount, Remove) on 4 connections.
//
//   bun bench/profile.ts [seconds=8] [--workload=hot|crud|get|capabilities|list] [--entry=src/main.ts]
//
// Output: bench/profiles/<workload>.cpuprofile (Chrome DevTools / speedscope) and
// bench/profiles/<workload>.md (Bun's grep-friendly summary).

import { mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { callOnce, engineRequest, isSuccess } from "./client.ts";
import { closedLoop, type Script } from "./load.ts";
import { CRUD_LABELS, crudScript } from "./hot-script.ts";
import { populate } from "./populate.ts";
import { BUN, pluginArgv, REPO, serve, stop, stopAll } from "./procs.ts";

const args = process.argv.slice(2);
const seconds = Number(args.find((a) => /^\d+$/.test(a)) ?? 8);
const workload = args.find((a) => a.startsWith("--workload="))?.slice(11) ?? "hot";
/** Another checkout's entry point (to profile a change); default this repo's src/main.ts. */
const entry = args.find((a) => a.startsWith("--entry="))?.slice(8) ?? join(REPO, "src/main.ts");

function script(): (c: number) => Script {
  switch (workload) {
    case "get":
      return (c) => ({ requests: [engineRequest("VolumeDriver.Get", { Name: `hot-${c}` })], labels: [0] });
    case "capabilities":
      return () => ({ requests: [engineRequest("VolumeDriver.Capabilities", {})], labels: [0] });
    case "list":
      return () => ({ requests: [engineRequest("VolumeDriver.List", {})], labels: [0] });
    case "crud":
      return crudScript;
    default:
      return (c) => {
        const id = crypto.randomUUID().replaceAll("-", "").padEnd(64, "0");
        const name = `hot-${c}`;
        return {
          requests: [
            engineRequest("VolumeDriver.Get", { Name: name }),
            engineRequest("VolumeDriver.Mount", { Name: name, ID: id }),
            engineRequest("VolumeDriver.Unmount", { Name: name, ID: id }),
          ],
          labels: [0, 0, 0],
        };
      };
  }
}

const tmp = mkdtempSync("/tmp/dqp-prof-");
const out = join(import.meta.dir, "profiles");
try {
  mkdirSync(out, { recursive: true });
  const volumes = join(tmp, "volumes");
  if (workload === "list") populate(volumes, 0, 10_000);
  const profDir = join(tmp, "prof");
  const argv = pluginArgv({ volumes, state: join(tmp, "state"), socket: join(tmp, "p.sock") }, entry);
  const plugin = await serve(
    [BUN, "--cpu-prof", "--cpu-prof-md", `--cpu-prof-dir=${profDir}`, "--cpu-prof-interval=250", ...argv],
    join(tmp, "p.sock"),
    join(tmp, "plugin.log"),
  );
  try {
    for (let c = 0; c < 8; c++) {
      const reply = await callOnce(plugin.socket, "VolumeDriver.Create", { Name: `hot-${c}`, Opts: {} });
      if (!isSuccess(reply)) throw new Error(reply.body.toString());
    }
    const connections = workload === "list" ? 1 : workload === "crud" ? 4 : 8;
    const result = await closedLoop(plugin.socket, script(), {
      connections,
      warmupMs: 500,
      durationMs: seconds * 1000,
      labels: workload === "crud" ? CRUD_LABELS : [workload],
    });
    process.stdout.write(
      `${workload} P=${connections}: ${result.rps.toFixed(0)} req/s, p50 ${result.p50.toFixed(3)} ms, p99 ${result.p99.toFixed(3)} ms (under the profiler)\n`,
    );
  } finally {
    await stop(plugin.proc, 15_000);
  }
  for (const file of readdirSync(profDir)) {
    const ext = file.endsWith(".md") ? "md" : "cpuprofile";
    renameSync(join(profDir, file), join(out, `${workload}.${ext}`));
  }
  process.stdout.write(`wrote ${join(out, `${workload}.cpuprofile`)} and ${join(out, `${workload}.md`)}\n`);
} finally {
  await stopAll();
  rmSync(tmp, { recursive: true, force: true });
}
