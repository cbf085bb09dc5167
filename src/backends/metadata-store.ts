import { mkdir, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { withDeadline } from "../core/deadline.ts";
import { errnoCode, PluginError } from "../core/errors.ts";
import { crashPoint } from "../system/crash-point.ts";
import { readFileNoFollow, removeStaleTempFiles, type StagedFile, stageFile, writeFileAtomic } from "../system/atomic-file.ts";
import { type FsSteps, POOLED } from "../system/fs-steps.ts";
import { lookAgainWhileMissing } from "../system/name-cache.ts";

export interface MetadataStoreOptions {
  /** File mode of metadata files. */
  mode: number;
  /**
   * Other hosts write this directory too (a shared root): unknown names are looked up on
   * disk, and the index is re-read from disk every `refreshMs` in the background.
   */
  shared: boolean;
  refreshMs?: number;
  /** Deadline of a disk lookup made on behalf of a request (ms). */
  lookupTimeoutMs?: number;
  /**
   * Directories from the trusted root down to `dir`, checked before every write: one
   * swapped for a symlink while serving would send our writes outside the root.
   */
  guardDirs?: string[];
  /** BLOCKING when the directory is on a local filesystem (see FsSteps); default POOLED. */
  steps?: FsSteps;
}

/** A record written but not yet in place (see MetadataStore.stage). */
export type StagedRecord = StagedFile;

/** Waits for two stagings started together; if either failed, discards the other and throws. */
export async function bothStaged<A extends StagedRecord | undefined, B extends StagedRecord | undefined>(a: Promise<A>, b: Promise<B>): Promise<[A, B]> {
  const [first, second] = await Promise.allSettled([a, b]);
  if (first.status === "fulfilled" && second.status === "fulfilled") return [first.value, second.value];
  for (const result of [first, second]) if (result.status === "fulfilled") await result.value?.discard();
  throw first.status === "rejected" ? first.reason : (second as PromiseRejectedResult).reason;
}

/** Files read at once while loading the index: enough to hide latency, few enough for NFS. */
const LOAD_CONCURRENCY = 32;
/** Deferred records written at once by a checkpoint. */
const WRITE_CONCURRENCY = 16;

/**
 * One JSON file per volume in a directory, named exactly like the volume (names are
 * validated single path components without a leading dot, so they cannot collide with
 * our dotted temporary files). Writes are atomic and durable (except records an intent
 * log makes durable: see defer); reads never follow a symlink planted in place of a file.
 *
 * An in-memory index mirrors the directory, so Get and List answer without touching
 * storage: fast, and still answering while a network filesystem hangs (an Err from Get
 * makes the engine forget the volume).
 */
export class MetadataStore<T> {
  private index = new Map<string, T>();
  /** Bumped on every change of the index, so that views derived from it can be reused. */
  private changes = 0;
  private refreshedAt = 0;
  /** The directory's times when the index was last read from it. */
  private dirStamp = { mtimeMs: -1, ctimeMs: -1 };
  private refreshing: Promise<void> | undefined;
  /** Names changed by this process while a reload runs: the reload must not undo them. */
  private touched: Set<string> | undefined;
  /** Records in the index whose files are not written yet (see defer). */
  private deferred = new Map<string, T>();
  /** Deferred records whose files writeDeferred is writing now. */
  private writing = new Map<string, Promise<void>>();

  constructor(
    readonly dir: string,
    private readonly options: MetadataStoreOptions,
  ) {}

  /** Creates the directory, refuses one that is a symlink, loads the index. */
  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o755 });
    for (const dir of this.options.guardDirs ?? [this.dir]) await makeRealDirectory(dir, 0o755);
    await removeStaleTempFiles(this.dir);
    await this.reload();
  }

  /**
   * The stored value. A shared directory is read from disk (another host may have
   * changed it), within the lookup deadline; the index follows what was read.
   */
  async read(name: string): Promise<T | undefined> {
    if (!this.options.shared) return this.index.get(name);
    const found = await withDeadline(this.readFile(name), this.options.lookupTimeoutMs ?? 5000, `reading ${join(this.dir, name)} (is the storage answering?)`, name);
    if (found === undefined) {
      if (this.index.delete(name)) this.changes++;
    } else if (this.index.get(name) !== found) {
      this.index.set(name, found);
      this.changes++;
    }
    return found;
  }

  /** Other hosts write this directory too: lookups go to disk. */
  get shared(): boolean {
    return this.options.shared;
  }

  /** The indexed value, without touching storage. */
  cached(name: string): T | undefined {
    return this.index.get(name);
  }

  private get steps(): FsSteps {
    return this.options.steps ?? POOLED;
  }

  private async verifyDirectories(): Promise<void> {
    for (const dir of this.options.guardDirs ?? [this.dir]) await requireRealDirectory(dir, this.steps);
  }

  async write(name: string, value: T): Promise<void> {
    await (await this.stage(name, value)).commit();
  }

  /**
   * The record's file is written (and fsynced) now and renamed into place by `commit`,
   * which also updates the index. Two records of one operation staged together wait for
   * the disk once (see stageFile). `durable: false` syncs neither: for a record whose
   * operation an intent log makes durable.
   */
  async stage(name: string, value: T, { durable = true } = {}): Promise<StagedRecord> {
    const failed = (error: unknown) => metadataError(`cannot write metadata of volume ${JSON.stringify(name)}`, error, name);
    await this.verifyDirectories();
    let staged: StagedFile;
    try {
      staged = await stageFile(join(this.dir, name), `${JSON.stringify(value)}\n`, this.options.mode, { steps: this.steps, durable });
    } catch (error) {
      throw failed(error);
    }
    crashPoint("metadata:staged");
    return {
      commit: async () => {
        try {
          await this.verifyDirectories();
          await staged.commit();
        } catch (error) {
          await staged.discard();
          throw error instanceof PluginError ? error : failed(error);
        }
        this.remember(name, value);
      },
      discard: () => staged.discard(),
    };
  }

  /**
   * A record kept in the index only, for an operation an intent log makes durable: the
   * log's next checkpoint writes it (writeDeferred), and a Remove before that has no file
   * to delete. A record of an older life still on disk is replaced now instead (unsynced),
   * so that no stale file can outlive a Remove.
   */
  async defer(name: string, value: T): Promise<void> {
    if (this.index.has(name) && !this.deferred.has(name)) return (await this.stage(name, value, { durable: false })).commit();
    this.remember(name, value);
    this.deferred.set(name, value);
  }

  /**
   * Writes the deferred records of `names`, unsynced (the checkpoint syncs them), on the
   * thread pool: a checkpoint must not hold the event loop for thousands of files. A
   * delete of a name whose file is being written waits for it (see delete).
   */
  async writeDeferred(names: ReadonlySet<string>): Promise<void> {
    const due = [...names].filter((name) => this.deferred.has(name));
    for (let i = 0; i < due.length; i += WRITE_CONCURRENCY) {
      await this.verifyDirectories();
      // All settle before a failure is thrown: none is left running into the next checkpoint.
      const results = await Promise.allSettled(due.slice(i, i + WRITE_CONCURRENCY).map((name) => this.writeDeferredOne(name)));
      const failure = results.find((result) => result.status === "rejected");
      if (failure) throw failure.reason;
    }
  }

  private writeDeferredOne(name: string): Promise<void> {
    const value = this.deferred.get(name);
    if (value === undefined) return Promise.resolve();
    const writing = this.writeRecordFile(name, value)
      .then(() => {
        if (this.deferred.get(name) === value) this.deferred.delete(name);
      })
      .finally(() => this.writing.delete(name));
    this.writing.set(name, writing);
    return writing;
  }

  private async writeRecordFile(name: string, value: T): Promise<void> {
    const path = join(this.dir, name);
    const text = `${JSON.stringify(value)}\n`;
    try {
      await POOLED.createFile(path, text, this.options.mode, false);
    } catch (error) {
      if (errnoCode(error) !== "EEXIST") throw metadataError(`cannot write metadata of volume ${JSON.stringify(name)}`, error, name);
      // Something already there (a file torn by a crash, a planted symlink): replaced atomically.
      await writeFileAtomic(path, text, this.options.mode, { steps: POOLED, durable: false });
    }
  }

  /** The index after a write of `name`; a reload running meanwhile keeps it. */
  private remember(name: string, value: T): void {
    this.deferred.delete(name);
    this.touched?.add(name);
    this.index.set(name, value);
    this.changes++;
  }

  /**
   * `durable: false` leaves the unlink to the next fsync of the directory, for a record
   * whose return after a power cut is harmless (one that start finishes or rolls back).
   */
  async delete(name: string, { durable = true } = {}): Promise<void> {
    // A record whose file a checkpoint is writing right now: once written (or not, if
    // that failed part way), the file is deleted like any other.
    const writing = this.writing.get(name);
    if (writing) await writing.catch(() => {});
    else if (this.deferred.delete(name)) return this.forget(name);
    this.deferred.delete(name);
    await this.verifyDirectories();
    try {
      await this.steps.unlink(join(this.dir, name));
      if (durable) await this.steps.syncDirectory(this.dir);
    } catch (error) {
      if (errnoCode(error) !== "ENOENT") {
        throw metadataError(`cannot delete metadata of volume ${JSON.stringify(name)}`, error, name);
      }
    }
    this.forget(name);
  }

  private forget(name: string): void {
    this.touched?.add(name);
    this.index.delete(name);
    this.changes++;
  }

  /** Changes so far: equal counts mean an unchanged index. */
  get generation(): number {
    return this.changes;
  }

  /** All stored entries, from the index; a shared directory is re-read in the background. */
  entries(): [string, T][] {
    if (this.options.shared && Date.now() - this.refreshedAt >= (this.options.refreshMs ?? 2000)) void this.refresh();
    return [...this.index.entries()];
  }

  /** Re-reads the directory once at a time; failures keep the last good index. */
  refresh(): Promise<void> {
    this.refreshing ??= this.reloadIfChanged()
      .catch(() => {})
      .finally(() => {
        this.refreshing = undefined;
      });
    return this.refreshing;
  }

  /**
   * Every write here is a rename or unlink, which changes the directory's mtime: an
   * unchanged directory needs no re-read (50,000 file reads at 50k volumes).
   */
  private async reloadIfChanged(): Promise<void> {
    const { mtimeMs, ctimeMs } = await stat(this.dir);
    if (mtimeMs === this.dirStamp.mtimeMs && ctimeMs === this.dirStamp.ctimeMs) {
      this.refreshedAt = Date.now();
      return;
    }
    await this.reload();
  }

  private async reload(): Promise<void> {
    const { mtimeMs, ctimeMs } = await stat(this.dir);
    this.touched = new Set();
    let entries: string[];
    try {
      entries = (await readdir(this.dir)).filter((entry) => !entry.startsWith("."));
    } catch (error) {
      this.touched = undefined;
      throw metadataError(`cannot list ${this.dir}`, error);
    }
    const fresh = new Map<string, T>();
    for (let i = 0; i < entries.length; i += LOAD_CONCURRENCY) {
      const batch = entries.slice(i, i + LOAD_CONCURRENCY);
      const values = await Promise.all(batch.map((name) => this.readFile(name).catch(() => undefined)));
      batch.forEach((name, j) => {
        const value = values[j];
        if (value !== undefined) fresh.set(name, value);
      });
    }
    for (const [name, value] of this.deferred) fresh.set(name, value);
    for (const name of this.touched) {
      const local = this.index.get(name);
      if (local === undefined) fresh.delete(name);
      else fresh.set(name, local);
    }
    this.touched = undefined;
    this.index = fresh;
    this.changes++;
    this.refreshedAt = Date.now();
    this.dirStamp = { mtimeMs, ctimeMs };
  }

  private async readFile(name: string): Promise<T | undefined> {
    let text: string | undefined;
    try {
      text = await readFileNoFollow(join(this.dir, name));
    } catch (error) {
      throw metadataError(`cannot read metadata of volume ${JSON.stringify(name)}`, error, name);
    }
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text) as T;
    } catch (error) {
      throw metadataError(`metadata of volume ${JSON.stringify(name)} is not valid JSON`, error, name);
    }
  }
}

/**
 * Makes directory `path` (or finds it) and requires it to be a real directory. On a
 * shared root, hosts starting together race to make it: the loser looks again while its
 * name cache hides the winner's.
 */
export async function makeRealDirectory(path: string, mode: number): Promise<void> {
  await mkdir(path, { mode }).catch((error: unknown) => {
    if (errnoCode(error) !== "EEXIST") throw error;
  });
  await lookAgainWhileMissing(
    () => requireRealDirectory(path),
    (error) => errnoCode(error) === "ENOENT",
  );
}

/** Throws unless `path` is a directory itself (not a symlink to one). */
export async function requireRealDirectory(path: string, steps: FsSteps = POOLED): Promise<void> {
  const info = await steps.lstat(path);
  if (info.isSymbolicLink() || !info.isDirectory()) {
    throw new PluginError("BACKEND_FAILED", `${path} must be a directory, not a symlink or file`);
  }
}

function metadataError(message: string, cause: unknown, volume?: string): PluginError {
  const detail = cause instanceof Error ? `: ${cause.message}` : "";
  return new PluginError("BACKEND_FAILED", `${message}${detail}`, { cause, volume });
}
