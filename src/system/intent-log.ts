import { closeSync, constants, fdatasync, openSync, writeSync } from "node:fs";
import { mkdir, readdir, readFile, unlink } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { errnoCode, messageOf } from "../core/errors.ts";
import { hostIdentity, removeStaleTempFiles, writeFileAtomic } from "./atomic-file.ts";
import { DirectorySync } from "./directory-sync.ts";
import { POOLED } from "./fs-steps.ts";
import { currentBootId, currentProcessIdentity, processIdentityAlive } from "./process-identity.ts";

const fdatasyncDescriptor = promisify(fdatasync);

/** Segment files: `<sequence>.log`, replayed in sequence order. */
const SEGMENT_NAME = /^(\d+)\.log$/;
const FORMAT = 1;
/** A checkpoint runs this long after the first entry it will cover. */
const CHECKPOINT_DELAY_MS = 1000;
/** ... or as soon as the current segment grows past this. */
const CHECKPOINT_BYTES = 4 << 20;

/** One intent: every entry names the volume it is about; the rest is the caller's. */
export interface IntentEntry {
  name: string;
}

/** What dead writers left behind, found when the log was opened. */
export interface RecoveredIntents<T extends IntentEntry> {
  /** Their entries, in the order they were written. */
  entries: T[];
  /** Lines that could not be read, to report (a torn last line is expected and not listed). */
  damaged: string[];
}

/** An appended intent whose effects are being carried out; `done` once they are. */
export interface IntentTicket {
  done(): void;
}

export interface IntentLogOptions {
  /**
   * Makes the effects of every intent about `names` durable (writing what was deferred
   * to it, then fsyncs of files and directories): run by a checkpoint before it deletes
   * the segments that hold them.
   */
  makeDurable(names: ReadonlySet<string>): Promise<void>;
  /** Makes a new or deleted segment's name durable. */
  syncDirectory(dir: string): Promise<void>;
  /** Reports a checkpoint that failed (it is retried later). */
  warn?: (message: string) => void;
  /** For tests: the boot this process runs in. */
  bootId?: string;
  /** For tests: how long after its first entry a checkpoint runs (ms). */
  checkpointDelayMs?: number;
}

interface Segment {
  path: string;
  fd: number;
  bytes: number;
  /** Resolves once the segment's header and its name in the directory are durable. */
  ready: Promise<void>;
  /** Lines appended and not yet written: the next sync round writes them all at once. */
  queued: string[];
  /** One write and fdatasync shared by the appends that wait for it together (group commit). */
  syncs: DirectorySync;
  names: Set<string>;
  /** Intents appended here whose effects are still being carried out. */
  inflight: Set<Promise<void>>;
}

interface Header {
  journal: number;
  host: string;
  boot: string;
  writer: string;
}

/**
 * A write-ahead intent log: an operation appends its intent, waits until that line is
 * durable, then carries out its effects without syncing each of them. Concurrent appends
 * share one fdatasync. A checkpoint, in the background, syncs the effects of every intent
 * in the closed segments and then deletes those segments; a start replays whatever
 * segments a dead writer left (see RecoveredIntents).
 *
 * Segments are created when the first intent after a checkpoint arrives, so an idle log
 * holds no file at all. Each starts with a header naming the host, the boot and the
 * writing process, so that a start replays only its own host's segments and never one of
 * a process that is still running.
 */
export class IntentLog<T extends IntentEntry> {
  private segments: Segment[] = [];
  private current: Segment | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** Checkpoints have failed since `since` (epoch ms); cleared by the next that succeeds. */
  private failure: { since: number; message: string } | undefined;
  private checkpointing: Promise<void> | undefined;
  private closed = false;
  /** Recovered segment files, deleted by `forgetRecovered` once their effects are durable. */
  private recoveredPaths: string[] = [];
  /** Recovered entries still to be carried out, in a segment of their own (see forgetRecovered). */
  private carried: { path: string; entries: T[] } | undefined;
  private carrying: Promise<void> = Promise.resolve();

  private constructor(
    readonly dir: string,
    private readonly options: IntentLogOptions,
    private nextSequence: number,
    private readonly bootId: string,
  ) {}

  /** Opens (creating) the log in `dir` and reads what dead writers left there. */
  static async open<T extends IntentEntry>(dir: string, options: IntentLogOptions): Promise<{ log: IntentLog<T>; recovered: RecoveredIntents<T> }> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    // A carried segment's rewrite cut short (see forgetRecovered) left its temporary file.
    await removeStaleTempFiles(dir);
    const bootId = options.bootId ?? currentBootId();
    const files = (await readdir(dir))
      .map((file) => ({ file, sequence: Number(SEGMENT_NAME.exec(file)?.[1] ?? Number.NaN) }))
      .filter((segment) => Number.isSafeInteger(segment.sequence))
      .sort((a, b) => a.sequence - b.sequence);
    const recovered: RecoveredIntents<T> = { entries: [], damaged: [] };
    const recoveredPaths: string[] = [];
    for (const { file } of files) {
      const path = join(dir, file);
      const read = parseSegment<T>(await readFile(path, "utf8"), path);
      // Another host's segment (a root switched to shared storage) is not ours to replay,
      // nor is a running writer's (mount-all beside serve, say).
      if (read.header && read.header.host !== hostIdentity()) continue;
      if (read.header && read.header.boot === bootId && read.header.writer !== currentProcessIdentity() && processIdentityAlive(read.header.writer)) continue;
      recoveredPaths.push(path);
      recovered.entries.push(...read.entries);
      recovered.damaged.push(...read.damaged);
    }
    const last = files.at(-1)?.sequence ?? 0;
    const log = new IntentLog<T>(dir, options, last + 1, bootId);
    log.recoveredPaths = recoveredPaths;
    return { log, recovered };
  }

  /**
   * Deletes the recovered segments: call once their effects are replayed and durable.
   * `carry` are recovered entries whose effects could not be carried out yet: they move
   * into a segment of their own, which this process's checkpoints leave alone, for the
   * next start to replay again. An entry about a name leaves it as soon as a new intent
   * about that name is appended, so that it is never replayed over a later life.
   */
  async forgetRecovered(carry: readonly T[] = []): Promise<void> {
    if (carry.length > 0) {
      const path = join(this.dir, `${this.nextSequence++}.log`);
      await this.writeCarried(path, carry);
      this.carried = { path, entries: [...carry] };
    }
    const paths = this.recoveredPaths.splice(0);
    for (const path of paths) await unlink(path).catch(ignoreMissing);
    if (paths.length > 0 || carry.length > 0) await this.options.syncDirectory(this.dir);
  }

  /** Writes the carried segment at `path` in one durable step (temporary file, rename). */
  private async writeCarried(path: string, entries: readonly T[]): Promise<void> {
    const text = this.headerLine() + entries.map((entry) => `${JSON.stringify(entry)}\n`).join("");
    await writeFileAtomic(path, text, 0o600, { steps: POOLED });
  }

  /** The first line of every segment this process writes: whose it is (see open). */
  private headerLine(): string {
    const header: Header = { journal: FORMAT, host: hostIdentity(), boot: this.bootId, writer: currentProcessIdentity() };
    return `${JSON.stringify(header)}\n`;
  }

  /** Whether the carried segment holds entries about `name` (see supersede). */
  carries(name: string): boolean {
    return this.carried?.entries.some((entry) => entry.name === name) ?? false;
  }

  /**
   * Takes `name` out of the carried segment (deleting it once empty), one change at a
   * time: for a Create or Remove of the name that does not go through this log (a root
   * that does not use it). `append` calls it itself.
   */
  supersede(name: string): Promise<void> {
    if (!this.carries(name)) return Promise.resolve();
    // A rewrite that failed before fails only its own caller; the next one tries again.
    this.carrying = this.carrying.catch(() => {}).then(async () => {
      const carried = this.carried;
      if (!carried || !this.carries(name)) return;
      const entries = carried.entries.filter((entry) => entry.name !== name);
      if (entries.length > 0) {
        await this.writeCarried(carried.path, entries);
      } else {
        await unlink(carried.path).catch(ignoreMissing);
        await this.options.syncDirectory(this.dir);
      }
      carried.entries = entries;
    });
    return this.carrying;
  }

  /**
   * Appends `entry` and resolves once it is durable. The caller then carries out its
   * effects and calls the ticket's `done` (also when they fail): a checkpoint waits for it.
   */
  async append(entry: T): Promise<IntentTicket> {
    if (this.closed) throw new Error(`the intent log in ${this.dir} is closed`);
    if (this.carries(entry.name)) await this.supersede(entry.name);
    const segment = (this.current ??= this.startSegment());
    this.enqueue(segment, entry);
    let release!: () => void;
    const inflight = new Promise<void>((resolve) => (release = resolve));
    segment.inflight.add(inflight);
    const ticket = {
      done: () => {
        segment.inflight.delete(inflight);
        release();
      },
    };
    try {
      await segment.ready;
      await segment.syncs.sync(segment.path);
    } catch (error) {
      ticket.done();
      throw error;
    }
    this.scheduleCheckpoint(segment);
    return ticket;
  }

  /**
   * Writes `entry` without waiting for the disk: for a note whose loss in a power cut is
   * harmless (a cancellation after the intent itself could not be made durable). Throws
   * nothing.
   */
  appendUnsynced(entry: T): void {
    if (this.closed) return;
    try {
      const segment = (this.current ??= this.startSegment());
      this.enqueue(segment, entry);
      segment.syncs.sync(segment.path).catch(() => {});
    } catch {
      // The log's disk failed; nobody is left to tell.
    }
  }

  private enqueue(segment: Segment, entry: T): void {
    const line = `${JSON.stringify(entry)}\n`;
    segment.queued.push(line);
    segment.bytes += Buffer.byteLength(line);
    segment.names.add(entry.name);
  }

  /**
   * One round of group commit: the lines queued so far in one write, then fdatasync.
   * Lines are written only between rounds, never while an fdatasync of the file runs:
   * a write into a page under writeback waits for it, on the event loop.
   */
  private async writeAndSync(segment: Segment): Promise<void> {
    if (segment.queued.length > 0) {
      const text = segment.queued.join("");
      segment.queued.length = 0;
      try {
        writeAll(segment.fd, text);
      } catch (error) {
        // A write cut short (a full disk) leaves a torn line that a later line would be
        // glued to: later intents go to a new segment.
        if (this.current === segment) this.current = undefined;
        throw error;
      }
    }
    await fdatasyncDescriptor(segment.fd);
  }

  /**
   * Makes the effects of every intent appended so far durable, then deletes their
   * segments. New appends go to a new segment meanwhile. One at a time.
   */
  checkpoint(): Promise<void> {
    this.checkpointing ??= this.runCheckpoint().finally(() => {
      this.checkpointing = undefined;
      // Intents appended while this one ran need the next; a failed one is retried.
      if (this.current && !this.closed) this.scheduleCheckpoint(this.current);
      else if (this.segments.length > 0 && !this.closed) this.armTimer();
    });
    return this.checkpointing;
  }

  /** A final checkpoint; later appends are refused. */
  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.closed = true;
    await this.checkpointing?.catch(() => {});
    await this.runCheckpoint();
  }

  /** Segments written and not yet checkpointed (for tests). */
  get pendingSegments(): number {
    return this.segments.length;
  }

  /** Checkpoints failing since when, and why: for health and status. */
  get checkpointFailure(): { since: number; message: string } | undefined {
    return this.failure;
  }

  private scheduleCheckpoint(segment: Segment): void {
    if (this.closed || this.checkpointing) return;
    if (segment.bytes >= CHECKPOINT_BYTES) {
      void this.checkpoint().catch(() => {});
      return;
    }
    this.armTimer();
  }

  private armTimer(): void {
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      void this.checkpoint().catch(() => {});
    }, this.options.checkpointDelayMs ?? CHECKPOINT_DELAY_MS);
  }

  private async runCheckpoint(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const closing = this.segments.splice(0);
    this.current = undefined;
    if (closing.length === 0) return;
    try {
      const names = new Set<string>();
      for (const segment of closing) {
        await Promise.all(segment.inflight);
        for (const name of segment.names) names.add(name);
      }
      await this.options.makeDurable(names);
    } catch (error) {
      // Kept for the next checkpoint (or the next start's replay): nothing is lost.
      this.segments.unshift(...closing);
      const message = messageOf(error);
      // Retried every second: said once, and again only when the reason changes.
      if (this.failure?.message !== message) this.options.warn?.(`checkpoint of the intent log in ${this.dir} failed (retried every second; its segments are kept): ${message}`);
      this.failure = { since: this.failure?.since ?? Date.now(), message };
      throw error;
    }
    this.failure = undefined;
    for (const segment of closing) {
      // Lines of appends that failed before their round wrote them: written, for a replay.
      if (segment.queued.length > 0) await this.writeAndSync(segment).catch(() => {});
      closeSync(segment.fd);
      await unlink(segment.path).catch(ignoreMissing);
    }
    // Not strictly needed (a segment that returns after a power cut is replayed, and
    // replay is idempotent), but it keeps a replay from redoing what was long made durable.
    await this.options.syncDirectory(this.dir);
  }

  private startSegment(): Segment {
    let fd: number | undefined;
    let path = "";
    while (fd === undefined) {
      path = join(this.dir, `${this.nextSequence++}.log`);
      try {
        fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_APPEND | constants.O_NOFOLLOW, 0o600);
      } catch (error) {
        if (errnoCode(error) !== "EEXIST") throw error;
      }
    }
    const opened = fd;
    let bytes: number;
    try {
      bytes = writeAll(opened, this.headerLine());
    } catch (error) {
      closeSync(opened);
      void unlink(path).catch(ignoreMissing);
      throw error;
    }
    const segment: Segment = {
      path,
      fd: opened,
      bytes,
      ready: this.options.syncDirectory(this.dir),
      queued: [],
      syncs: new DirectorySync(() => this.writeAndSync(segment)),
      names: new Set(),
      inflight: new Set(),
    };
    // A segment whose name could not be made durable takes no more intents; a checkpoint
    // still covers the ones it holds (their appends failed, but their lines are written).
    segment.ready.catch(() => {
      if (this.current === segment) this.current = undefined;
    });
    this.segments.push(segment);
    return segment;
  }
}

/** The header and entries of one segment's text. */
function parseSegment<T extends IntentEntry>(text: string, path: string): { header: Header | undefined; entries: T[]; damaged: string[] } {
  const lines = text.split("\n");
  // The text after the last newline is an append cut short: never acknowledged.
  lines.pop();
  const entries: T[] = [];
  const damaged: string[] = [];
  let header: Header | undefined;
  lines.forEach((line, index) => {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      damaged.push(`${path} line ${index + 1} is not JSON`);
      return;
    }
    if (index === 0) {
      if (isHeader(value)) header = value;
      else damaged.push(`${path} has no valid header`);
      return;
    }
    if (typeof value === "object" && value !== null && typeof (value as { name?: unknown }).name === "string") entries.push(value as T);
    else damaged.push(`${path} line ${index + 1} names no volume`);
  });
  return { header, entries, damaged };
}

function isHeader(value: unknown): value is Header {
  const header = value as Partial<Header> | null;
  return typeof header === "object" && header !== null && header.journal === FORMAT && typeof header.host === "string" && typeof header.boot === "string" && typeof header.writer === "string";
}

function writeAll(fd: number, text: string): number {
  const bytes = Buffer.from(text);
  for (let written = 0; written < bytes.length; ) written += writeSync(fd, bytes, written, bytes.length - written);
  return bytes.length;
}

function ignoreMissing(error: unknown): void {
  if (errnoCode(error) !== "ENOENT") throw error;
}
