// Generic process helpers for the e2e harness: run argv (never a shell string), look
// processes up in /proc, stop them by PID.

import { readFileSync, readdirSync, readlinkSync } from "node:fs";

const DEFAULT_RUN_TIMEOUT_MS = 60_000;

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Kill (SIGKILL) after this long; the result then has code 124. Default 60 s. */
  timeoutMs?: number;
  /** Written to the process' stdin; stdin is closed (ignored) when absent. */
  stdin?: string;
  /** Merged over process.env; `undefined` removes a variable. */
  env?: Record<string, string | undefined>;
  /** Working directory (inside the namespace for Namespace.run; default there: workDir). */
  cwd?: string;
}

/** Runs argv (no shell) and collects its output; never rejects on non-zero exit. */
export async function runArgv(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS;
  const proc = Bun.spawn(argv, {
    stdin: opts.stdin === undefined ? "ignore" : new TextEncoder().encode(opts.stdin),
    stdout: "pipe",
    stderr: "pipe",
    env: mergeEnv(opts.env),
    ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }),
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill("SIGKILL");
  }, timeoutMs);
  try {
    const [stdout, stderr, code] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
    if (timedOut) {
      // 124 mirrors timeout(1), so a hang is distinguishable from a failure.
      return { code: 124, stdout, stderr: `${stderr}\n[e2e] timed out after ${timeoutMs} ms: ${argv.join(" ")}` };
    }
    return { code, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
}

/** process.env overlaid with `extra`; an `undefined` value removes the variable. */
export function mergeEnv(extra: Record<string, string | undefined> | undefined): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, ...extra })) {
    if (v !== undefined) env[k] = v;
  }
  return env;
}

function describeResult(argv: string[], r: RunResult): string {
  return `${argv.join(" ")} exited ${r.code}\nstdout: ${r.stdout.trim()}\nstderr: ${r.stderr.trim()}`;
}

export async function runChecked(argv: string[], opts?: RunOptions): Promise<RunResult> {
  const r = await runArgv(argv, opts);
  if (r.code !== 0) throw new Error(describeResult(argv, r));
  return r;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** True while pid exists and is not a zombie (an unreaped corpse counts as gone). */
export function isAlive(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return false;
  }
  // The state field follows the parenthesised comm, which may contain spaces.
  const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  return state !== "Z" && state !== "X";
}

export function readCmdline(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
  } catch {
    return undefined;
  }
}

export function readPpid(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ppid = Number(fields[1]);
    return Number.isInteger(ppid) ? ppid : undefined;
  } catch {
    return undefined;
  }
}

export function readMountNs(pid: number | "self"): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return undefined;
  }
}

export function allPids(): number[] {
  return readdirSync("/proc")
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .filter((pid) => pid !== process.pid);
}

/** PIDs whose command line contains `needle` (used to find leftovers of one work dir). */
export function pidsWithCmdline(needle: string): number[] {
  return allPids().filter((pid) => isAlive(pid) && (readCmdline(pid)?.includes(needle) ?? false));
}

export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Already gone (ESRCH) is exactly what we want.
  }
}

async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() >= deadline) return false;
    await sleep(50);
  }
  return true;
}

/** SIGTERM, wait up to graceMs, then SIGKILL. Throws if the pid still survives. */
export async function terminatePid(pid: number, graceMs: number): Promise<void> {
  if (!isAlive(pid)) return;
  signal(pid, "SIGTERM");
  if (await waitGone(pid, graceMs)) return;
  signal(pid, "SIGKILL");
  if (!(await waitGone(pid, 10_000))) throw new Error(`pid ${pid} survived SIGKILL`);
}
