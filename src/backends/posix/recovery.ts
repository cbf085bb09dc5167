import { rmdir } from "node:fs/promises";
import { errnoCode, messageOf } from "../../core/errors.ts";
import type { FsSteps } from "../../system/fs-steps.ts";
import type { IntentLog, RecoveredIntents } from "../../system/intent-log.ts";
import type { MetadataStore, StagedRecord } from "../metadata-store.ts";
import { asPosixIntent, type PosixIntent, planReplay, type ReplayStep } from "./intents.ts";
import { type Ownership, parseOwnership } from "./options.ts";
import { isInterruptedCreate, type PosixVolumeMeta } from "./volume-meta.ts";

/**
 * What a posix backend finishes at start, before it serves: the Creates and Removes a
 * crash interrupted, by their records and by what a dead process left in the intent log.
 */

export interface FinishRemoveOptions {
  /** Undoes the Remove's decision when the data could not be moved. */
  restore?: () => Promise<void>;
  /** Deletes the trashed data now (else the background sweep does). */
  deleteNow?: boolean;
  /** Syncs the move (false: an intent log made the Remove durable). */
  durable?: boolean;
}

/** The backend's own steps, as the recovery uses them. */
export interface RecoveryHost {
  readonly meta: MetadataStore<PosixVolumeMeta>;
  readonly steps: FsSteps;
  pathOf(name: string): string;
  /** Makes (or adopts) a volume's directory, then puts `ready` (its record) in place. */
  makeDirectory(name: string, ownership: Ownership, ready?: StagedRecord): Promise<void>;
  /** Moves a volume's data out (into the trash) and forgets its record. */
  finishRemove(name: string, options: FinishRemoveOptions): Promise<void>;
  /** Writes and syncs what the intents about `names` did (an intent log checkpoint). */
  makeDurable(names: ReadonlySet<string>): Promise<void>;
  /** A createdAt no earlier life of a name had. */
  nextCreatedAt(): string;
  warn(message: string): void;
}

/**
 * A Create that crashed after writing its "creating" record left that record and maybe
 * an empty directory: both go. A non-empty directory was adopted data and stays. Only
 * this host's dead processes' records are touched (and anyone's abandoned for an hour):
 * another host may be creating right now.
 */
export async function rollBackInterruptedCreates(host: RecoveryHost): Promise<void> {
  for (const [name, meta] of host.meta.entries()) {
    if (!isInterruptedCreate(meta)) continue;
    await rmdir(host.pathOf(name)).catch(() => {});
    await host.meta.delete(name);
  }
}

/**
 * A "removing" record is a Remove that was decided: finish it, whoever's it was (on a
 * shared root another host's crashed Remove is finished here; two hosts finishing one
 * Remove is harmless, the rename moves the data once). Get and List never show such a
 * volume, so one that cannot be finished now stays hidden until a later Remove, Create
 * or start finishes it.
 */
export async function rollForwardInterruptedRemoves(host: RecoveryHost): Promise<void> {
  for (const [name, meta] of [...host.meta.entries()]) {
    if (meta.state !== "removing") continue;
    try {
      // On a shared root another host may have finished this Remove and created the name
      // anew since the index was read: act only on the very record seen here.
      const current = await host.meta.read(name);
      if (current?.state !== "removing" || current.createdAt !== meta.createdAt) continue;
      // Only moved into the trash here; the background sweep deletes it, so a large
      // volume does not keep the socket closed.
      await host.finishRemove(name, { deleteNow: false });
    } catch (error) {
      host.warn(`cannot finish the interrupted removal of ${name} yet (it stays hidden; the next Remove, Create or start retries): ${messageOf(error)}`);
    }
  }
}

/**
 * Carries out what dead writers left in the intent log (see planReplay), makes it
 * durable, and hands the log back what could not be carried out yet, for the next start.
 */
export async function replayIntentLog(host: RecoveryHost, log: IntentLog<PosixIntent>, recovered: RecoveredIntents<PosixIntent>): Promise<void> {
  for (const problem of recovered.damaged) host.warn(`intent log: ${problem} (skipped)`);
  const intents: PosixIntent[] = [];
  for (const entry of recovered.entries) {
    const intent = asPosixIntent(entry);
    if (intent) intents.push(intent);
    else host.warn(`intent log: an entry about ${JSON.stringify(entry.name)} is not one this version knows (skipped)`);
  }
  const recorded = new Map(host.meta.entries().map(([name, meta]) => [name, meta.createdAt]));
  const failed = new Set<string>();
  for (const step of planReplay(intents, recorded)) {
    // A name's later step (the Create after a Remove) waits for the one that failed.
    if (failed.has(step.name)) continue;
    try {
      await replay(host, step);
    } catch (error) {
      failed.add(step.name);
      // A Remove that cannot be finished yet also becomes a "removing" record: the volume
      // is hidden meanwhile, and the next Create or Remove of it finishes it too.
      if (step.kind === "finish-remove") await markRemoving(host, step.name).catch(() => {});
      host.warn(`intent log: cannot ${step.kind} ${step.name} yet (the next start retries): ${messageOf(error)}`);
    }
  }
  if (intents.length > 0) await host.makeDurable(new Set(intents.map((intent) => intent.name)));
  try {
    await log.forgetRecovered(intents.filter((intent) => failed.has(intent.name)));
  } catch (error) {
    // A full or read-only disk: the recovered segments stay whole for the next start.
    host.warn(`intent log: cannot set aside what the replay could not finish (the recovered segments stay for the next start): ${messageOf(error)}`);
  }
}

/** Records a Remove decided by the log as a durable "removing" record (see rollForwardInterruptedRemoves). */
async function markRemoving(host: RecoveryHost, name: string): Promise<void> {
  const existing = host.meta.cached(name);
  const meta: PosixVolumeMeta = existing ?? { version: 1, createdAt: host.nextCreatedAt(), options: {}, state: "removing" };
  await host.meta.write(name, { ...meta, state: "removing" });
}

async function replay(host: RecoveryHost, step: ReplayStep): Promise<void> {
  switch (step.kind) {
    case "ensure-directory":
      try {
        await host.steps.lstat(host.pathOf(step.name));
        return;
      } catch (error) {
        if (errnoCode(error) !== "ENOENT") throw error;
      }
      await host.makeDirectory(step.name, await parseOwnership(step.meta.options, step.name));
      return;
    case "redo-create": {
      // An empty directory is the interrupted Create's own mkdir, maybe before its chmod
      // (the umask's 0700): made again, it gets the documented mode. Data stays adopted.
      await rmdir(host.pathOf(step.name)).catch(() => {});
      const ready = await host.meta.stage(step.name, step.meta, { durable: false });
      await host.makeDirectory(step.name, await parseOwnership(step.meta.options, step.name), ready);
      return;
    }
    case "finish-remove":
      await host.finishRemove(step.name, { deleteNow: false, durable: false });
      return;
    case "drop-record":
      await host.meta.delete(step.name, { durable: false });
      return;
  }
}
