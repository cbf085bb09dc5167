// Soak: ours and the Go reference under the engine's client for `minutes`, in windows of
// alternating hot and crud load. After every window: ours' CPU per call (and Go's, to tell
// our drift from the machine's), the mount state's size (mounts.slots), and the heap, Map/Set/Promise/timer counts
// and pending deadlines from GET /debug/runtime (after a full collection).
//
//   bun bench/run.ts --soak[=10]
//
// Verdicts compare the last third of the windows with the first third (medians; the
// first window is the JIT's warm-up and not counted):
// CPU per call flat within ±5 % (ours/Go, which cancels the machine's own drift; raw ours
// is printed too), and no growth of the mount state, heap or counts beyond a small slack.

import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { buildGoTools } from "./go-ref/tools.ts";
import { procStatusKb, type Served, stop } from "./procs.ts";
import type { RuntimeStats } from "../src/protocol/runtime-stats.ts";
import { median } from "./stats.ts";
import { alternate, type Reporter, type RoundResult, startGo, startOurs, type TargetLine } from "./versus-go.ts";

/** One window's figures: CPU per call, the mount state's bytes, RSS, and what GET /debug/runtime reports. */
interface Window extends RuntimeStats {
  minute: number;
  hotUs: number;
  hotGoUs: number;
  crudUs: number;
  crudGoUs: number;
  stateBytes: number;
  segments: number;
  rssMB: number;
}

const cpuPerCall = (results: RoundResult[], target: string) => {
  const mine = results.filter((r) => r.target === target);
  return mine.reduce((n, r) => n + r.cpuNs, 0) / mine.reduce((n, r) => n + r.calls, 0) / 1000;
};

async function runtime(socket: string): Promise<RuntimeStats> {
  const reply = await fetch("http://plugin/debug/runtime", { unix: socket });
  if (!reply.ok) throw new Error(`GET /debug/runtime: HTTP ${reply.status}`);
  return (await reply.json()) as RuntimeStats;
}

export async function soak(minutes: number, tmp: string, out: Reporter): Promise<TargetLine[]> {
  const tools = buildGoTools(out.say);
  const servers: Served[] = [];
  try {
    const ours = await startOurs(tmp, "soak-ours");
    servers.push(ours);
    const go = await startGo(tools, tmp, "soak-go");
    servers.push(go);
    const targets = [
      { name: "ours", served: ours },
      { name: "go", served: go },
    ];
    const stateFiles = ["mounts.slots"].map((file) => join(tmp, "soak-ours", "state", file));
    // Segments of the root's intent log: one being written, one being checkpointed at most.
    const journal = join(tmp, "soak-ours", "volumes", ".docker-quobyte-plugin", "journal");
    const windows: Window[] = [];
    const started = performance.now();
    out.say("# soak: minute, CPU per call hot ours/go us, crud ours/go us, mount state bytes, intent log segments, RSS MB, heap bytes, objects, maps, sets, promises, timers, pending deadlines");
    while (performance.now() - started < minutes * 60_000) {
      const hot = await alternate(tools, tmp, { workload: "hot", rounds: 6, targets });
      const crud = await alternate(tools, tmp, { workload: "crud", rounds: 3, targets });
      const window: Window = {
        ...(await runtime(ours.socket)),
        minute: (performance.now() - started) / 60_000,
        hotUs: cpuPerCall(hot, "ours"),
        hotGoUs: cpuPerCall(hot, "go"),
        crudUs: cpuPerCall(crud, "ours"),
        crudGoUs: cpuPerCall(crud, "go"),
        stateBytes: stateFiles.reduce((sum, file) => sum + (existsSync(file) ? statSync(file).size : 0), 0),
        segments: existsSync(journal) ? readdirSync(journal).length : 0,
        rssMB: (procStatusKb(ours.pid, "VmRSS") * 1024) / 1e6,
      };
      windows.push(window);
      const w = window;
      out.say(
        `# soak ${w.minute.toFixed(2)} min: hot ${w.hotUs.toFixed(1)}/${w.hotGoUs.toFixed(1)} us, crud ${w.crudUs.toFixed(0)}/${w.crudGoUs.toFixed(0)} us, ` +
          `mount state ${w.stateBytes} B, intent log segments ${w.segments}, RSS ${w.rssMB.toFixed(1)} MB, heap ${w.heapBytes}, objects ${w.objects}, maps ${w.maps}, sets ${w.sets}, ` +
          `promises ${w.promises}, timers ${w.timers}, deadlines ${w.pendingDeadlines}`,
      );
    }
    return verdicts(windows, out);
  } finally {
    for (const served of servers) await stop(served.proc);
  }
}

function verdicts(windows: Window[], out: Reporter): TargetLine[] {
  // The first window warms the JIT up (CPU per call falls by a quarter in it): not measured.
  const measured = windows.slice(1);
  if (measured.length < 3) return [{ target: "soak: at least 4 windows", measured: `${windows.length}`, met: false }];
  const third = Math.max(1, Math.floor(measured.length / 3));
  const first = measured.slice(0, third);
  const last = measured.slice(-third);
  const drift = (f: (w: Window) => number) => median(last.map(f)) / median(first.map(f));
  const lines: TargetLine[] = [];
  const hotRatio = drift((w) => w.hotUs / w.hotGoUs);
  const crudRatio = drift((w) => w.crudUs / w.crudGoUs);
  out.figure("soak.hot.cpu_per_call.drift", drift((w) => w.hotUs), "x", undefined);
  out.figure("soak.hot.cpu_per_call.go_drift", drift((w) => w.hotGoUs), "x", undefined);
  out.figure("soak.crud.cpu_per_call.drift", drift((w) => w.crudUs), "x", undefined);
  lines.push({
    target: "soak: hot CPU per call flat within ±5 % (ours/Go, last third vs first third)",
    measured: `${hotRatio.toFixed(3)}x (ours alone ${drift((w) => w.hotUs).toFixed(3)}x, Go alone ${drift((w) => w.hotGoUs).toFixed(3)}x)`,
    met: Math.abs(hotRatio - 1) <= 0.05,
  });
  lines.push({
    target: "soak: crud CPU per call flat within ±5 % (ours/Go, last third vs first third)",
    measured: `${crudRatio.toFixed(3)}x (ours alone ${drift((w) => w.crudUs).toFixed(3)}x, Go alone ${drift((w) => w.crudGoUs).toFixed(3)}x)`,
    met: Math.abs(crudRatio - 1) <= 0.05,
  });
  // No growth: the end is no higher than the first third's highest (SQLite reuses its WAL
  // after each checkpoint; the slot table grows only with more pairs at once), counts within a small slack for what is in flight.
  const bounded = (name: string, f: (w: Window) => number, slack: number) => {
    const ceiling = Math.max(...first.map(f)) + slack;
    const end = Math.max(...last.map(f));
    lines.push({ target: `soak: no growth of ${name}`, measured: `first third up to ${Math.max(...first.map(f))}, last third up to ${end}`, met: end <= ceiling });
  };
  bounded("the mount state (bytes)", (w) => w.stateBytes, 0);
  lines.push({
    target: "soak: intent log checkpointed (at most 2 segments at every window's end)",
    measured: `up to ${Math.max(...measured.map((w) => w.segments))}`,
    met: measured.every((w) => w.segments <= 2),
  });
  bounded("the heap (bytes, +5 %)", (w) => w.heapBytes, 0.05 * Math.max(...first.map((w) => w.heapBytes)));
  bounded("Maps", (w) => w.maps, 8);
  bounded("Sets", (w) => w.sets, 8);
  bounded("Promises", (w) => w.promises, 32);
  bounded("timers", (w) => w.timers, 2);
  bounded("pending deadlines", (w) => w.pendingDeadlines, 0);
  return lines;
}
