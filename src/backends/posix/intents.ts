import type { PosixVolumeMeta } from "./volume-meta.ts";

/**
 * What a posix Create or Remove writes to the root's intent log before it acts (see
 * IntentLog). `createdAt` tells one life of a name from the next; a `cancel` says that
 * the operation it names failed and was undone.
 */
export type PosixIntent =
  | { op: "create"; name: string; meta: PosixVolumeMeta }
  | { op: "remove"; name: string; createdAt: string }
  | { op: "cancel"; name: string; of: "create" | "remove"; createdAt: string };

/** A step of the replay at start; what the filesystem needs to match the log. */
export type ReplayStep =
  /** An intended volume whose record is in place: its directory must be too. */
  | { kind: "ensure-directory"; name: string; meta: PosixVolumeMeta }
  /** An intended volume whose record was lost: make (or adopt) its directory, write the record. */
  | { kind: "redo-create"; name: string; meta: PosixVolumeMeta }
  /** A Create that never finished in this boot: its directory goes if empty. */
  | { kind: "roll-back-create"; name: string }
  /** A decided Remove whose volume is still recorded: finish it. */
  | { kind: "finish-remove"; name: string }
  /** A cancelled Create whose record stayed: it goes (the directory stays, adopted data included). */
  | { kind: "drop-record"; name: string };

/** The intent a log line holds, or undefined for a line that is none of ours. */
export function asPosixIntent(value: unknown): PosixIntent | undefined {
  const entry = value as Partial<Record<string, unknown>>;
  if (typeof entry !== "object" || entry === null || typeof entry.name !== "string") return undefined;
  if (entry.op === "create") {
    const meta = entry.meta as Partial<PosixVolumeMeta> | undefined;
    const valid = typeof meta === "object" && meta !== null && meta.state === "ready" && typeof meta.createdAt === "string" && typeof meta.options === "object" && meta.options !== null;
    return valid ? (entry as PosixIntent) : undefined;
  }
  if (entry.op === "remove") return typeof entry.createdAt === "string" ? (entry as PosixIntent) : undefined;
  if (entry.op === "cancel") {
    const valid = typeof entry.createdAt === "string" && (entry.of === "create" || entry.of === "remove");
    return valid ? (entry as PosixIntent) : undefined;
  }
  return undefined;
}

function identityOf(intent: PosixIntent): string {
  return intent.op === "create" ? intent.meta.createdAt : intent.createdAt;
}

/**
 * The steps that bring the filesystem in line with recovered intents. `recorded` is the
 * createdAt of each volume's record on disk now.
 *
 * - Written in this boot, the filesystem holds every step the dead writer took, synced
 *   or not. Operations on one name run one at a time and append only after the previous
 *   one finished, so only each name's last intent can be unfinished: a Create without its
 *   record is rolled back (never acknowledged: the record is its last step), a Remove whose
 *   record is still there is finished (it was decided).
 * - After a reboot, effects that were never synced may be lost, acknowledged or not: every
 *   intent is redone in order. A local journaling filesystem makes metadata changes
 *   durable in the order they were made, so what survived of one name's steps is a prefix
 *   of them, and the record on disk says how far it got.
 */
export function planReplay(intents: readonly PosixIntent[], sameBoot: boolean, recorded: ReadonlyMap<string, string>): ReplayStep[] {
  const cancelled = new Set(intents.filter((i) => i.op === "cancel").map((i) => `${i.of}\0${i.name}\0${i.createdAt}`));
  const isCancelled = (intent: PosixIntent) => intent.op !== "cancel" && cancelled.has(`${intent.op}\0${intent.name}\0${identityOf(intent)}`);
  return sameBoot ? planSameBoot(intents, recorded) : planRedo(intents, recorded, isCancelled);
}

function planSameBoot(intents: readonly PosixIntent[], recorded: ReadonlyMap<string, string>): ReplayStep[] {
  const last = new Map<string, PosixIntent>();
  for (const intent of intents) {
    last.delete(intent.name);
    last.set(intent.name, intent);
  }
  const steps: ReplayStep[] = [];
  for (const intent of last.values()) {
    const record = recorded.get(intent.name);
    if (intent.op === "create" && record === undefined) steps.push({ kind: "roll-back-create", name: intent.name });
    if (intent.op === "remove" && record === intent.createdAt) steps.push({ kind: "finish-remove", name: intent.name });
  }
  return steps;
}

function planRedo(intents: readonly PosixIntent[], recorded: ReadonlyMap<string, string>, isCancelled: (intent: PosixIntent) => boolean): ReplayStep[] {
  const state = new Map(recorded);
  const steps: ReplayStep[] = [];
  for (const intent of intents) {
    const record = state.get(intent.name);
    if (intent.op === "create") {
      const created = intent.meta.createdAt;
      if (isCancelled(intent)) {
        if (record === created) {
          steps.push({ kind: "drop-record", name: intent.name });
          state.delete(intent.name);
        }
      } else if (record === created) {
        steps.push({ kind: "ensure-directory", name: intent.name, meta: intent.meta });
      } else if (record === undefined) {
        steps.push({ kind: "redo-create", name: intent.name, meta: intent.meta });
        state.set(intent.name, created);
      }
      // Another record: a later life of this name got further on disk, or
      // one that no intent explains, which replay leaves alone.
      continue;
    }
    if (intent.op === "remove" && !isCancelled(intent) && record === intent.createdAt) {
      steps.push({ kind: "finish-remove", name: intent.name });
      state.delete(intent.name);
    }
  }
  return steps;
}
