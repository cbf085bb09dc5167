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
  /** A volume the log leaves existing whose record is in place: its directory must be too. */
  | { kind: "ensure-directory"; name: string; meta: PosixVolumeMeta }
  /** A volume the log leaves existing without its record: make (or adopt) its directory, write the record. */
  | { kind: "redo-create"; name: string; meta: PosixVolumeMeta }
  /** A volume the log leaves removed: whatever is left of it goes. */
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
 * The steps that bring the filesystem to the state the recovered intents leave. Per name,
 * the last Create or Remove that was not cancelled decides, and only that final state is
 * made: a Create's record is written by the checkpoint after it (or never, when a Remove
 * came first), so a missing record says nothing of how far a name got, and replaying an
 * earlier life's Remove over the next life could take that life's data. A logged intent
 * is a decision, acknowledged or not (its line may have reached the disk just before the
 * crash), and is carried out. `recorded` is the createdAt of each record on disk now.
 *
 * A record the log explains is one of a life it names. What survives of unsynced changes
 * is a prefix of them in order (a crash of this process keeps them all; after a power cut
 * a local journaling filesystem keeps metadata changes in the order they were made), so:
 * - Existing (Create last): with its own record, its directory is ensured; with none, the
 *   record is written and the directory made or adopted; over the record of another life
 *   the log names, that life's Remove never reached the disk and is finished first.
 * - Removed (Remove last): finished when the record is of a life the log names, or when
 *   there is none and the Remove is the name's very last line. A cancelled Create after it
 *   shows that the Remove was done before, and its adopted data stays.
 * - A record no intent explains (a life that began after these intents: see
 *   IntentLog.forgetRecovered) is left alone with its volume, as is a cancelled Create's record
 *   with its data; only the record goes.
 */
export function planReplay(intents: readonly PosixIntent[], recorded: ReadonlyMap<string, string>): ReplayStep[] {
  const key = (name: string, createdAt: string) => `${name}\0${createdAt}`;
  const cancelled = new Set(intents.filter((i) => i.op === "cancel").map((i) => `${i.of}\0${key(i.name, i.createdAt)}`));
  const cancelledCreates = new Set<string>();
  /** Lives (name and createdAt) of Creates and Removes the log holds, cancelled or not. */
  const named = new Set<string>();
  const last = new Map<string, PosixIntent>();
  const lastLine = new Map<string, PosixIntent>();
  for (const intent of intents) {
    lastLine.set(intent.name, intent);
    if (intent.op === "cancel") continue;
    named.add(key(intent.name, identityOf(intent)));
    if (cancelled.has(`${intent.op}\0${key(intent.name, identityOf(intent))}`)) {
      if (intent.op === "create") cancelledCreates.add(key(intent.name, intent.meta.createdAt));
      continue;
    }
    // Steps come in the order of each name's last intent.
    last.delete(intent.name);
    last.set(intent.name, intent);
  }
  const steps: ReplayStep[] = [];
  for (const name of lastLine.keys()) {
    const record = recorded.get(name);
    if (!last.has(name) && record !== undefined && cancelledCreates.has(key(name, record))) steps.push({ kind: "drop-record", name });
  }
  for (const intent of last.values()) {
    const record = recorded.get(intent.name);
    // A cancelled Create's record counts as none.
    const current = record !== undefined && cancelledCreates.has(key(intent.name, record)) ? undefined : record;
    const explained = current !== undefined && named.has(key(intent.name, current));
    if (intent.op === "create") {
      if (current === intent.meta.createdAt) {
        steps.push({ kind: "ensure-directory", name: intent.name, meta: intent.meta });
      } else if (current === undefined || explained) {
        if (explained) steps.push({ kind: "finish-remove", name: intent.name });
        steps.push({ kind: "redo-create", name: intent.name, meta: intent.meta });
      }
    } else if (explained || (current === undefined && lastLine.get(intent.name) === intent)) {
      steps.push({ kind: "finish-remove", name: intent.name });
    }
  }
  return steps;
}
