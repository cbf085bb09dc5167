// A process (`sleep infinity`) that keeps a set of fresh namespaces alive, so that tests
// can run commands inside them with `nsenter -t <pid>`. Everything is stopped by PID.

import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { isAlive, runArgv } from "../e2e/support/process.ts";

export const NSENTER = "/usr/bin/nsenter";
const UNSHARE = "/usr/bin/unshare";

/** Namespace kinds as nsenter/unshare flags: m = mount, u = UTS (hostname), n = network. */
export type NsKind = "m" | "u" | "n";

export interface NsHolder {
  readonly pid: number;
  /** argv prefix that runs a program inside the holder's namespaces, its network included (nsenter execs, no fork). */
  enter(kinds?: NsKind[]): string[];
  /** Runs argv inside; throws with its output unless it exits 0. */
  run(argv: string[], timeoutMs?: number): Promise<string>;
  /** PIDs (other than the holder) living in the holder's mount namespace. */
  pidsInside(): number[];
  /** SIGKILLs every process left inside, then the holder. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts a holder in new namespaces of `kinds`. With `inside`, the new namespaces are
 * made from within another holder's (so a host joins the storage's network namespace).
 */
export async function startHolder(kinds: NsKind[], inside?: NsHolder): Promise<NsHolder> {
  const flags = kinds.map((kind) => `-${kind}`);
  const argv = [...(inside ? inside.enter(["m", "n"]) : []), UNSHARE, ...flags, "--propagation", "private", "--", "sleep", "infinity"];
  const proc = Bun.spawn(argv, { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const pid = proc.pid;
  const outer = readNs(inside?.pid ?? process.pid, "mnt");
  const deadline = Date.now() + 10_000;
  // Until unshare has exec'd sleep, nsenter would land in the outer namespaces.
  while (!(comm(pid) === "sleep" && readNs(pid, "mnt") !== outer)) {
    if (proc.exitCode !== null) throw new Error(`unshare exited ${proc.exitCode}: ${await new Response(proc.stderr).text()}`);
    if (Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new Error(`namespace holder ${pid} did not start`);
    }
    await Bun.sleep(10);
  }
  const mountNs = readNs(pid, "mnt");
  // The network namespace is always entered: a holder made inside another lives in that
  // one's network, and a command run from the test's own would not reach its services.
  const all: NsKind[] = [...new Set<NsKind>([...kinds, "n"])];
  const enter = (which: NsKind[] = all): string[] => [NSENTER, "-t", String(pid), ...which.map((kind) => `-${kind}`), "--"];
  const pidsInside = (): number[] =>
    readdirSync("/proc")
      .filter((name) => /^\d+$/.test(name))
      .map(Number)
      .filter((other) => other !== pid && other !== process.pid && readNs(other, "mnt") === mountNs && isAlive(other));
  let stopped = false;
  return {
    pid,
    enter,
    async run(args, timeoutMs = 60_000) {
      const result = await runArgv([...enter(), ...args], { timeoutMs });
      if (result.code !== 0) throw new Error(`${args.join(" ")} exited ${result.code}: ${result.stderr.trim()} ${result.stdout.trim()}`);
      return result.stdout;
    },
    pidsInside,
    async stop() {
      if (stopped) return;
      stopped = true;
      for (const other of pidsInside()) {
        try {
          process.kill(other, "SIGKILL");
        } catch {
          // gone already
        }
      }
      proc.kill("SIGKILL");
      await proc.exited;
    },
  };
}

function readNs(pid: number, kind: string): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/${kind}`);
  } catch {
    return undefined;
  }
}

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
}
