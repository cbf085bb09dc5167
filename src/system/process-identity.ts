import { readFileSync } from "node:fs";

/** The kernel's per-boot random id, or "unknown" where /proc does not say. */
export function currentBootId(): string {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    return "unknown";
  }
}

/**
 * The start time of process `pid` (clock ticks since boot, field 22 of /proc/<pid>/stat),
 * or undefined when no such process exists. The command name (field 2) may hold spaces and
 * parentheses, so fields are counted after its last ")".
 */
function startTimeOf(pid: number): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // After "pid (comm) " come state (field 3) ... starttime (field 22): index 19 here.
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
}

let own: string | undefined;

/**
 * A process as "<pid>:<start time>": unlike a bare pid, it does not match a later process
 * that was given the same pid. Meaningful within one boot only; undefined when no process
 * has that pid.
 */
export function processIdentityOf(pid: number): string | undefined {
  const startTime = startTimeOf(pid);
  return startTime === undefined ? undefined : `${pid}:${startTime}`;
}

/** This process's identity (see processIdentityOf). */
export function currentProcessIdentity(): string {
  own ??= processIdentityOf(process.pid) ?? `${process.pid}:unknown`;
  return own;
}

/** Whether the process an identity names is still running (within the same boot). */
export function processIdentityAlive(identity: string): boolean {
  const [pid, startTime] = identity.split(":");
  const number = Number(pid);
  if (!Number.isSafeInteger(number) || number <= 0 || startTime === undefined) return false;
  return startTimeOf(number) === startTime;
}
