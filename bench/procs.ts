// Processes the bench starts: every one is registered here and stopped by its PID, on
// success, on error (try/finally) and on SIGINT/SIGTERM of the bench itself.

import type { Subprocess } from "bun";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { callOnce } from "./client.ts";

export const REPO = join(import.meta.dir, "..");
export const DIST_BINARY = join(REPO, "dist/docker-quobyte-plugin");
let pluginBinaryPath = DIST_BINARY;

/** The binary under test: dist/docker-quobyte-plugin unless `--binary=` chose another. */
export function pluginBinary(): string {
  return pluginBinaryPath;
}

/** `--scope global` measures with mount claims on (a shared root's bookkeeping). */
let pluginScope: "local" | "global" | undefined;
export function setPluginScope(scope: "local" | "global"): void {
  pluginScope = scope;
}

export function setPluginBinary(path: string): void {
  pluginBinaryPath = path;
}
/** The bun binary that runs this bench; the floor server runs under the same one. */
export const BUN = process.execPath;

type Proc = Subprocess<"ignore", number, number>;

const running = new Set<Proc>();

export interface Served {
  readonly proc: Proc;
  readonly pid: number;
  readonly socket: string;
  readonly logPath: string;
  /** Milliseconds from just before spawn to the first answered Plugin.Activate. */
  readonly readyMs: number;
  log(): string;
}

/** Spawns argv with stdout/stderr appended to logPath, registered for cleanup. */
export function spawnTracked(argv: string[], logPath: string): Proc {
  const fd = openSync(logPath, "a");
  try {
    const proc = Bun.spawn(argv, { stdin: "ignore", stdout: fd, stderr: fd });
    running.add(proc);
    void proc.exited.then(() => running.delete(proc));
    return proc;
  } finally {
    closeSync(fd);
  }
}

/**
 * Starts a server process and resolves once `socket` answers Plugin.Activate with 200.
 * Polls every millisecond: cheap (one stat while the socket is missing) and fine-grained
 * enough for a startup figure in the tens of milliseconds.
 */
export async function serve(argv: string[], socket: string, logPath: string, timeoutMs = 15_000): Promise<Served> {
  const started = performance.now();
  const proc = spawnTracked(argv, logPath);
  const log = () => (existsSync(logPath) ? readFileSync(logPath, "utf8") : "");
  for (;;) {
    if (existsSync(socket)) {
      try {
        const reply = await callOnce(socket, "Plugin.Activate");
        if (reply.status === 200) break;
      } catch {
        // Bound but not accepting yet, or a stale file: try again.
      }
    }
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`${argv.join(" ")} exited (${proc.exitCode ?? proc.signalCode}) before serving:\n${log()}`);
    }
    if (performance.now() - started > timeoutMs) {
      await stop(proc);
      throw new Error(`${argv.join(" ")} did not answer on ${socket} within ${timeoutMs} ms:\n${log()}`);
    }
    await Bun.sleep(1);
  }
  const readyMs = performance.now() - started;
  return { proc, pid: proc.pid, socket, logPath, readyMs, log };
}

export interface PluginDirs {
  volumes: string;
  state: string;
  socket: string;
  logPath: string;
}

/** The plugin under test, exactly as the brief runs it. */
export function pluginArgv(dirs: Omit<PluginDirs, "logPath">, binary = pluginBinary()): string[] {
  const argv = [
    binary,
    "serve",
    "--backend",
    "posix",
    "--path",
    dirs.volumes,
    "--state-dir",
    dirs.state,
    "--socket",
    dirs.socket,
    "--log-level",
    "warn",
  ];
  if (pluginScope) argv.push("--scope", pluginScope);
  // The socket is chowned to root:<group>; without root only one's own group works.
  if (process.getuid?.() !== 0) argv.push("--group", String(process.getgid?.() ?? 0));
  return argv;
}

export function startPlugin(dirs: PluginDirs): Promise<Served> {
  return serve(pluginArgv(dirs), dirs.socket, dirs.logPath);
}

/** The compile flags of package.json's "build" script: from `--compile` up to `--outfile`. */
function pluginBuildFlags(): string[] {
  const script = (JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { scripts: { build: string } }).scripts.build;
  const words = script.split(/\s+/);
  const from = words.indexOf("--compile");
  const to = words.indexOf("--outfile");
  if (from < 0 || to < from) throw new Error(`package.json "build" is not "bun build ... --compile ... --outfile ...": ${script}`);
  return words.slice(from, to);
}

/**
 * The floor as a standalone binary, compiled with the plugin's own flags (package.json
 * "build"), so that a startup figure compares our work with Bun's alone.
 */
export function compileFloor(outfile: string): string {
  const built = Bun.spawnSync([BUN, "build", join(import.meta.dir, "floor-server.ts"), ...pluginBuildFlags(), "--outfile", outfile], {
    stdout: "pipe",
    stderr: "pipe",
  });
  if (built.exitCode !== 0) throw new Error(`compiling the floor failed: ${built.stderr.toString()}`);
  return outfile;
}

/** The Hono floor: routes, reads and parses each body, answers a constant (floor-hono-server.ts). */
export function startHonoFloor(socket: string, logPath: string, bodyFile: string): Promise<Served> {
  return serve([BUN, join(import.meta.dir, "floor-hono-server.ts"), socket, bodyFile], socket, logPath);
}

export function startFloor(socket: string, logPath: string, bodyFile?: string): Promise<Served> {
  const argv = [BUN, join(import.meta.dir, "floor-server.ts"), socket];
  if (bodyFile) argv.push(bodyFile);
  return serve(argv, socket, logPath);
}

type Stoppable = Pick<Subprocess, "exitCode" | "signalCode" | "kill" | "exited">;

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
export async function stop(proc: Stoppable, graceMs = 5_000): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  proc.kill("SIGTERM");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const exited = await Promise.race([
    proc.exited.then(() => true),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), graceMs);
    }),
  ]);
  clearTimeout(timer);
  if (!exited) {
    proc.kill("SIGKILL");
    await proc.exited;
  }
  running.delete(proc as Proc);
}

const cleanups = new Set<() => Promise<void>>();

/** Registers a cleanup for things not spawned here (the e2e engine); returns its remover. */
export function onCleanup(cleanup: () => Promise<void>): () => void {
  cleanups.add(cleanup);
  return () => cleanups.delete(cleanup);
}

/** Stops everything still running (used in finally blocks and signal handlers). */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((proc) => stop(proc, 2_000)));
  for (const cleanup of [...cleanups]) {
    cleanups.delete(cleanup);
    await cleanup().catch((error) => process.stderr.write(`cleanup failed: ${String(error)}\n`));
  }
}

/** A field of /proc/<pid>/status in kB (VmRSS, VmHWM, ...). */
export function procStatusKb(pid: number, field: string): number {
  const text = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text);
  if (!match) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(match[1]);
}

const CLK_TCK = Number(Bun.spawnSync(["getconf", "CLK_TCK"]).stdout.toString().trim()) || 100;

/** CPU time (user + system, all threads) the process used so far, in microseconds. */
export function cpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 and 15 of stat(5): utime, stime; counted from field 3 (state) here.
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLK_TCK;
}
