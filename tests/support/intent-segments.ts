import { readdirSync } from "node:fs";
import { join } from "node:path";
import { CONTROL_DIR } from "../../src/backends/posix/posix-backend.ts";
import { hostIdentity } from "../../src/system/atomic-file.ts";
import { currentBootId, processIdentityOf } from "../../src/system/process-identity.ts";

/** A writer that is certainly not running: no pid this large, and no such start time. */
export const DEAD_WRITER = "999999999:0";

/** An intent-log segment as a writer of this host would leave it (a dead one unless `header` says otherwise). */
export function segmentText(lines: unknown[], header: Record<string, unknown> = {}): string {
  const head = { journal: 1, host: hostIdentity(), boot: currentBootId(), writer: DEAD_WRITER, ...header };
  return [head, ...lines].map((line) => `${JSON.stringify(line)}\n`).join("");
}

/**
 * Runs `use` with the identity of a process that runs meanwhile (a live writer), its pid,
 * and a way to stop it early; it is stopped after `use` in any case.
 */
export async function withRunningProcess(use: (identity: string | undefined, pid: number, stop: () => Promise<void>) => Promise<void>): Promise<void> {
  const sleeper = Bun.spawn(["sleep", "30"]);
  const stop = async () => {
    sleeper.kill();
    await sleeper.exited;
  };
  try {
    await use(processIdentityOf(sleeper.pid), sleeper.pid, stop);
  } finally {
    await stop();
  }
}

/**
 * Waits until the intent log under `root` holds no segment: its checkpoint, about a second
 * after the last Create or Remove, has written the deferred records and synced them.
 */
export async function checkpointed(root: string, timeoutMs = 10_000): Promise<void> {
  const journal = join(root, CONTROL_DIR, "journal");
  const deadline = performance.now() + timeoutMs;
  while (readdirSync(journal).some((file) => file.endsWith(".log"))) {
    if (performance.now() > deadline) throw new Error(`the intent log in ${journal} was not checkpointed within ${timeoutMs} ms`);
    await Bun.sleep(20);
  }
}
