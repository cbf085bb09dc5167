import { mkdir, readdir, realpath, rm, rmdir, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { errnoCode, messageOf, PluginError } from "../../core/errors.ts";
import type { Backend, Scope, StorageHealth, VolumeOptions, VolumeRecord, VolumeSummary } from "../../core/types.ts";
import type { MountMonitor } from "../../system/mount-health.ts";
import { hostIdentity } from "../../system/atomic-file.ts";
import { fsyncDirectory, fsyncIfPresent } from "../../system/directory-sync.ts";
import { IntentLog, type IntentTicket } from "../../system/intent-log.ts";
import { type FsSteps, fsStepsFor, POOLED } from "../../system/fs-steps.ts";
import { isLocal, keepsMetadataOrder, treeFilesystems } from "../../system/mountinfo.ts";
import { crashPoint } from "../../system/crash-point.ts";
import { bothStaged, makeRealDirectory, MetadataStore, requireRealDirectory, type StagedRecord } from "../metadata-store.ts";
import type { PosixIntent } from "./intents.ts";
import { type Ownership, parseOwnership, POSIX_OPTION_NAMES } from "./options.ts";
import { type FinishRemoveOptions, type RecoveryHost, replayIntentLog, rollBackInterruptedCreates, rollForwardInterruptedRemoves } from "./recovery.ts";
import type { PosixVolumeMeta } from "./volume-meta.ts";
import {
  applyOwnership,
  backendError,
  requireExistingVolumeDirectory,
  requireVolumeDirectory,
  requireVolumeDirectorySync,
  storageUnavailable,
} from "./volume-fs.ts";

/** A metadata read on the request path waits at most this long before the index answers. */
const READ_TIMEOUT_MS = 1000;

/** Our bookkeeping lives in this dotted directory beside the volumes. */
export const CONTROL_DIR = ".docker-quobyte-plugin";

/** Files fsynced at once by a checkpoint of the intent log. */
const CHECKPOINT_CONCURRENCY = 16;

export interface PosixBackendOptions {
  /** Directory holding one subdirectory per volume. */
  root: string;
  scope?: Scope;
  /** How often List re-reads the metadata directory for other hosts' changes (ms). */
  indexRefreshMs?: number;
  /** Checks the root's filesystem before Create and Mount (a hung NFS fails fast). */
  monitor?: MountMonitor;
  /** Where problems found at start, outside any request, are reported. */
  warn?: (message: string) => void;
  /** For tests: the boot the intent log believes it runs in. */
  bootId?: string;
  /** For tests: the intent log's checkpoint delay (ms). */
  checkpointDelayMs?: number;
}

/**
 * Volumes as directories under one root: local disk, or any filesystem already mounted
 * there (NFS, GlusterFS, CephFS). Per-volume metadata sits beside the volumes under the
 * root, so every host sharing the root sees the same volumes.
 *
 * Nothing outside the root is touched: names are single validated path components, the
 * volume directory is never followed when it is a symlink, and removal first renames
 * the directory into our trash (rename moves a symlink, not its target).
 */
export class PosixBackend implements Backend {
  readonly kind = "posix";
  readonly scope: Scope;
  readonly optionNames = POSIX_OPTION_NAMES;
  private root = "";
  private meta!: MetadataStore<PosixVolumeMeta>;
  private trashDir = "";
  /** How filesystem steps run: BLOCKING once init found a local tree (see FsSteps). */
  private steps: FsSteps = POOLED;
  private listed: { generation: number; volumes: VolumeSummary[] } | undefined;
  /** The root and every mount below it were local filesystems at start (see checkLocal). */
  private localTree = false;
  /** ... and ones that make metadata changes durable in order (see journaled()). */
  private orderedTree = false;
  private rootSlash = "";
  private readonly indexRefreshMs: number;
  private readonly monitor: MountMonitor | undefined;
  private readonly warn: (message: string) => void;
  private readonly bootId: string | undefined;
  private readonly checkpointDelayMs: number | undefined;
  /**
   * The root's intent log, opened by init whether this root uses it or not: intents a
   * replay could not finish wait in it (see IntentLog.supersede).
   */
  private intentLog: IntentLog<PosixIntent> | undefined;
  /** The last createdAt handed out, in ms: each life of a name gets its own. */
  private lastCreatedAt = 0;

  constructor(options: PosixBackendOptions) {
    this.scope = options.scope ?? "local";
    this.indexRefreshMs = options.indexRefreshMs ?? 2000;
    this.monitor = options.monitor;
    this.warn = options.warn ?? (() => {});
    this.bootId = options.bootId;
    this.checkpointDelayMs = options.checkpointDelayMs;
    this.setRoot(resolve(options.root));
  }

  private setRoot(root: string): void {
    this.root = root;
    this.rootSlash = root.endsWith("/") ? root : `${root}/`;
    this.listed = undefined;
    this.steps = fsStepsFor(this.localTree);
    // With --scope global every host sharing the root writes here: read through to disk.
    // A local root has one writer, this process, and its index is the truth.
    this.meta = new MetadataStore(join(root, CONTROL_DIR, "volumes"), {
      mode: 0o644,
      shared: this.scope === "global",
      refreshMs: this.indexRefreshMs,
      lookupTimeoutMs: READ_TIMEOUT_MS,
      guardDirs: [join(root, CONTROL_DIR), join(root, CONTROL_DIR, "volumes")],
      steps: this.steps,
    });
    this.trashDir = join(root, CONTROL_DIR, "trash");
  }

  /** A shared root (`--scope global`) carries the hosts' mount claims beside the volumes. */
  get claimsDir(): string | undefined {
    return this.scope === "global" ? join(this.root, CONTROL_DIR, "claims") : undefined;
  }

  /** The volume root as used (its real path once init ran). */
  get rootPath(): string {
    return this.root;
  }

  async init(): Promise<void> {
    try {
      await mkdir(this.root, { recursive: true, mode: 0o755 });
      // Hand the engine canonical paths, whatever symlinks lead to the root.
      const real = await realpath(this.root);
      // Known before the metadata store is made: on a local tree its steps may block.
      const filesystems = await treeFilesystems(real);
      this.localTree = isLocal(filesystems);
      this.orderedTree = keepsMetadataOrder(filesystems);
      this.setRoot(real);
      await requireRealDirectory(this.root);
      if (this.localTree) this.monitor?.markLocal((await stat(this.root)).dev);
      await makeRealDirectory(join(this.root, CONTROL_DIR), 0o755);
      await this.meta.init();
      // The root, metadata store and steps are final from here on.
      const recovery = this.recovery();
      await rollBackInterruptedCreates(recovery);
      await makeRealDirectory(this.trashDir, 0o700);
      await rollForwardInterruptedRemoves(recovery);
      await this.openJournal(recovery);
      // Leftovers of interrupted removals are deleted in the background: a large one
      // must not delay the socket, and a failure is simply retried at the next start.
      void this.emptyTrash().catch(() => {});
    } catch (error) {
      if (error instanceof PluginError) throw error;
      throw new PluginError("BACKEND_FAILED", `cannot use ${this.root} as the volume root: ${messageOf(error)}`, {
        cause: error,
      });
    }
  }

  /**
   * The intent log serves only a root with one writer, this process (local scope), on
   * local filesystems that make metadata changes durable in the order they were made,
   * which a replay after a reboot relies on (see planReplay). Elsewhere every record and
   * directory is synced as it is written. Either way, what a dead process of this host
   * left in the log is replayed first.
   */
  private journaled(): boolean {
    return this.scope === "local" && this.localTree && this.orderedTree;
  }

  /**
   * The intent log when Create and Remove go through it, becoming durable with one shared
   * fdatasync instead of syncing each record and directory (see journaled()).
   */
  private get journal(): IntentLog<PosixIntent> | undefined {
    return this.journaled() ? this.intentLog : undefined;
  }

  private async openJournal(recovery: RecoveryHost): Promise<void> {
    const dir = join(this.root, CONTROL_DIR, "journal");
    await makeRealDirectory(dir, 0o700);
    const { log, recovered } = await IntentLog.open<PosixIntent>(dir, {
      makeDurable: (names) => this.makeDurable(names),
      syncDirectory: (path) => this.steps.syncDirectory(path),
      warn: this.warn,
      bootId: this.bootId,
      checkpointDelayMs: this.checkpointDelayMs,
    });
    await replayIntentLog(recovery, log, recovered);
    // A root that does not use the log still hands it every Create and Remove (see supersede).
    this.intentLog = log;
  }

  /** What the start's recovery (recovery.ts) needs of this backend, as it is now. */
  private recovery(): RecoveryHost {
    return {
      meta: this.meta,
      steps: this.steps,
      pathOf: (name) => this.pathOf(name),
      makeDirectory: (name, ownership, ready) => this.makeDirectory(name, ownership, ready),
      finishRemove: (name, options) => this.finishRemove(name, options),
      makeDurable: (names) => this.makeDurable(names),
      nextCreatedAt: () => this.nextCreatedAt(),
      warn: this.warn,
    };
  }

  /**
   * A checkpoint of the intent log: the deferred records of the names it holds are
   * written, then those records and volume directories (owner and mode) are synced, then
   * the directories their names live in. Names gone since are skipped.
   */
  private async makeDurable(names: ReadonlySet<string>): Promise<void> {
    await this.meta.writeDeferred(names);
    const list = [...names];
    for (let i = 0; i < list.length; i += CHECKPOINT_CONCURRENCY) {
      const batch = list.slice(i, i + CHECKPOINT_CONCURRENCY);
      await Promise.all(batch.flatMap((name) => [fsyncIfPresent(join(this.meta.dir, name)), fsyncIfPresent(this.pathOf(name))]));
    }
    for (const dir of [this.meta.dir, this.root, this.trashDir]) await fsyncDirectory(dir);
  }

  /**
   * Appends an intent; a failure is the operation's, said in the operator's terms. The
   * line may be written but not durable then: `cancel` is noted after it, unsynced, so
   * that a replay does not carry out an operation that failed.
   */
  private async logIntent(journal: IntentLog<PosixIntent>, intent: PosixIntent, cancel: PosixIntent & { op: "cancel" }): Promise<IntentTicket> {
    try {
      return await journal.append(intent);
    } catch (error) {
      journal.appendUnsynced(cancel);
      throw backendError(`cannot record the intent to ${intent.op} volume ${JSON.stringify(intent.name)} in ${journal.dir}`, error, intent.name);
    }
  }

  /** Says that an operation failed and was undone; unsynced if even that cannot be synced. */
  private async cancel(journal: IntentLog<PosixIntent>, intent: PosixIntent & { op: "cancel" }): Promise<void> {
    await journal.append(intent).then(
      (ticket) => ticket.done(),
      () => journal.appendUnsynced(intent),
    );
  }

  /** A createdAt no earlier life of a name in this process had (two in one ms are told apart). */
  private nextCreatedAt(): string {
    this.lastCreatedAt = Math.max(Date.now(), this.lastCreatedAt + 1);
    return new Date(this.lastCreatedAt).toISOString();
  }

  /** Deletes what interrupted removals left in the trash. */
  private async emptyTrash(): Promise<void> {
    for (const entry of await readdir(this.trashDir)) {
      await rm(join(this.trashDir, entry), { recursive: true, force: true });
    }
  }

  /**
   * `name` is a validated volume name, one path component without a leading dot, so no
   * join is needed. A lone surrogate is written to disk as U+FFFD: the path says so too.
   */
  pathOf(name: string): string {
    return this.rootSlash + (name.isWellFormed() ? name : name.toWellFormed());
  }

  async create(name: string, options: VolumeOptions, arrivedAt = performance.now()): Promise<void> {
    const ownership = await parseOwnership(options, name);
    await this.requireLive(name, arrivedAt);
    await this.watchStorage(this.createChecked(name, options, ownership));
  }

  /** Lets the next health check probe again when an operation saw the storage fail. */
  private async watchStorage<T>(work: Promise<T>): Promise<T> {
    try {
      return await work;
    } catch (error) {
      if (storageUnavailable(error)) this.monitor?.invalidate();
      throw error;
    }
  }

  private async createChecked(name: string, options: VolumeOptions, ownership: Ownership): Promise<void> {
    // Intents a replay could not finish must never be replayed over this life of the name.
    if (this.intentLog?.carries(name)) await this.intentLog.supersede(name);
    const existing = await this.meta.read(name);
    if (existing?.state === "ready") return;
    if (existing?.state === "removing") await this.finishRemove(name);
    if (this.journal) return this.createJournaled(this.journal, name, options, ownership);
    const record: PosixVolumeMeta = {
      version: 1,
      createdAt: this.nextCreatedAt(),
      options: { ...options },
      state: "creating",
      creator: { host: hostIdentity(), pid: process.pid },
    };
    const { creator: _, ...ready } = record;
    // Both records' files are written and fsynced at once, before either is renamed into
    // place: the Create waits for the disk three times instead of four.
    const [creating, done] = await bothStaged(
      existing?.state !== "creating" ? this.meta.stage(name, record) : Promise.resolve(undefined),
      this.meta.stage(name, { ...ready, state: "ready" }),
    );
    try {
      await creating?.commit();
      await this.makeDirectory(name, ownership, done);
    } catch (error) {
      await done.discard();
      throw error;
    }
  }

  /**
   * The intent first, durable; then the directory, unsynced, and the record in the index
   * only: a checkpoint writes the record and syncs both later (a Create removed before
   * that never writes one), and a replay redoes them if a crash or power cut took them.
   */
  private async createJournaled(journal: IntentLog<PosixIntent>, name: string, options: VolumeOptions, ownership: Ownership): Promise<void> {
    const meta: PosixVolumeMeta = { version: 1, createdAt: this.nextCreatedAt(), options: { ...options }, state: "ready" };
    const cancel = { op: "cancel", name, of: "create", createdAt: meta.createdAt } as const;
    const ticket = await this.logIntent(journal, { op: "create", name, meta }, cancel);
    try {
      await this.makeDirectory(name, ownership, { commit: () => this.meta.defer(name, meta), discard: async () => {} });
    } catch (error) {
      await this.cancel(journal, cancel);
      throw error;
    } finally {
      ticket.done();
    }
  }

  /** Makes (or adopts) the volume's directory, then puts its staged "ready" record (if any) in place. */
  private async makeDirectory(name: string, ownership: Ownership, ready?: StagedRecord): Promise<void> {
    const dir = this.pathOf(name);
    let made = true;
    try {
      await this.steps.mkdir(dir, 0o755);
    } catch (error) {
      if (errnoCode(error) !== "EEXIST") {
        await ready?.discard();
        await this.meta.delete(name).catch(() => {});
        throw backendError(`cannot create ${dir}`, error, name);
      }
      // A directory without metadata: a create interrupted before, or data the operator
      // placed there on purpose. Adopt it, but only if it is a real directory.
      made = false;
      try {
        await requireExistingVolumeDirectory(dir, name);
      } catch (refused) {
        await ready?.discard();
        await this.meta.delete(name).catch(() => {});
        throw refused;
      }
    }
    try {
      // mkdir's 0755 is cut by the umask (the unit's UMask=0077 would leave 0700, which
      // non-root containers cannot enter); a directory we made gets the documented mode.
      await applyOwnership(dir, made && ownership.mode === undefined ? { ...ownership, mode: 0o755 } : ownership, this.steps);
      await ready?.commit();
    } catch (error) {
      await ready?.discard();
      if (made) await rmdir(dir).catch(() => {});
      await this.meta.delete(name).catch(() => {});
      if (error instanceof PluginError) throw error;
      throw backendError(`cannot set owner or mode of ${dir}`, error, name);
    }
  }

  /**
   * Records the decision ("removing"), moves the data into the trash, forgets the volume.
   * From the record on the volume is gone for Get and List, and a crash is rolled
   * forward at start; a Remove that fails before the data moved puts the record back,
   * so the volume stays whole and listed.
   */
  async remove(name: string): Promise<void> {
    if (this.intentLog?.carries(name)) await this.intentLog.supersede(name);
    const existing = await this.meta.read(name);
    if (!existing) return;
    if (this.journal && existing.state === "ready") return this.removeJournaled(this.journal, name, existing.createdAt);
    if (existing.state !== "removing") await this.meta.write(name, { ...existing, state: "removing" });
    crashPoint("posix-remove:marked");
    await this.finishRemove(name, { restore: existing.state === "ready" ? () => this.meta.write(name, existing) : undefined });
  }

  /** The decision is the durable intent; the data's move and the record's unlink are not synced. */
  private async removeJournaled(journal: IntentLog<PosixIntent>, name: string, createdAt: string): Promise<void> {
    const cancel = { op: "cancel", name, of: "remove", createdAt } as const;
    const ticket = await this.logIntent(journal, { op: "remove", name, createdAt }, cancel);
    try {
      crashPoint("posix-remove:marked");
      await this.finishRemove(name, { restore: () => this.cancel(journal, cancel), durable: false });
    } finally {
      ticket.done();
    }
  }

  /**
   * Deletes an empty volume's directory, or moves a volume holding data into the trash;
   * forgets the volume, then deletes the data. `restore` undoes the decision when the data
   * could not be moved; `durable: false` leaves the move unsynced, for a Remove an intent
   * log made durable.
   */
  private async finishRemove(name: string, { restore, deleteNow = true, durable = true }: FinishRemoveOptions = {}): Promise<void> {
    const trashed = join(this.trashDir, crypto.randomUUID());
    let renaming = true;
    let moved = false;
    let emptied = false;
    try {
      emptied = await removeIfEmpty(this.pathOf(name));
      if (!emptied) {
        renaming = false;
        // The trash must still be ours: a symlink swapped in would carry the data out of the root.
        await requireRealDirectory(join(this.root, CONTROL_DIR), this.steps);
        await requireRealDirectory(this.trashDir, this.steps);
        renaming = true;
        await this.steps.rename(this.pathOf(name), trashed);
      }
      moved = true;
      if (durable) await this.steps.syncDirectory(this.root);
    } catch (error) {
      // The data went already (by a crashed Remove, or another host): only the record is
      // left. Only the rmdir's or rename's own ENOENT says so: a missing trash says nothing
      // of the data.
      const alreadyGone = renaming && !moved && errnoCode(error) === "ENOENT";
      if (!alreadyGone) {
        // Only data still in place may be handed back; moved data stays "removing", hidden.
        if (!moved && restore) await restore().catch(() => {});
        if (error instanceof PluginError) throw error;
        throw backendError(`cannot remove ${this.pathOf(name)}`, error, name);
      }
    }
    crashPoint("posix-remove:trashed");
    // Not fsynced: the durable "removing" record already decided this Remove, and the
    // data is durably in the trash. If a power cut brings the record back, start finishes
    // the Remove once more (nothing left to move). The next write to the directory makes
    // the unlink durable anyway.
    await this.meta.delete(name, { durable: false });
    if (moved && !emptied && deleteNow) {
      try {
        await this.deleteTrashed(trashed);
      } catch (error) {
        // The volume is gone already; what is left in the trash is deleted at next start.
        throw backendError(`volume removed, but deleting its data in ${trashed} failed`, error, name);
      }
    }
  }

  /** An empty leftover goes in one step; anything else through the recursive rm. */
  private async deleteTrashed(trashed: string): Promise<void> {
    try {
      await POOLED.rmdir(trashed);
    } catch {
      // Not empty, or a symlink (rm deletes the link, never its target): the full walk.
      await rm(trashed, { recursive: true, force: true });
    }
  }

  inspect(name: string): Promise<VolumeRecord | undefined> {
    // With one writer (this process, local scope) the index is the truth: no await needed.
    if (!this.meta.shared) return Promise.resolve(this.recordOf(name, this.meta.cached(name), this.storageNotLive()));
    return this.inspectShared(name);
  }

  /** The last probe found the storage not live (none yet counts as live). */
  private storageNotLive(): boolean {
    return this.monitor?.lastHealth !== undefined && this.monitor.lastHealth.state !== "live";
  }

  private async inspectShared(name: string): Promise<VolumeRecord | undefined> {
    let meta: PosixVolumeMeta | undefined;
    // Storage that does not answer must not make Get fail or wait: the engine would
    // forget the volume. Known-bad storage is not touched at all; storage that stops
    // answering now is given a short deadline. Either way the index answers, and says so.
    let stale = this.storageNotLive();
    if (stale) {
      meta = this.meta.cached(name);
    } else {
      try {
        meta = await this.meta.read(name);
      } catch (error) {
        if (!storageUnavailable(error)) throw error;
        this.monitor?.invalidate();
        meta = this.meta.cached(name);
        stale = true;
      }
    }
    return this.recordOf(name, meta, stale);
  }

  private recordOf(name: string, meta: PosixVolumeMeta | undefined, stale: boolean): VolumeRecord | undefined {
    // A "creating" volume is not one yet, a "removing" one is one no more (its data may be in the trash).
    if (meta?.state !== "ready") return undefined;
    const status: Record<string, unknown> = { backend: this.kind, options: meta.options };
    if (stale) status.storage = "not responding; showing the last known state";
    return { name, mountpoint: this.pathOf(name), createdAt: meta.createdAt, status };
  }

  /**
   * The same frozen array while the index is unchanged: `docker volume ls` and monitors
   * poll List, and the protocol layer encodes an unchanged array only once.
   */
  async list(): Promise<VolumeSummary[]> {
    const entries = this.meta.entries();
    if (this.listed?.generation === this.meta.generation) return this.listed.volumes;
    const out: VolumeSummary[] = [];
    for (const [name, meta] of entries) if (meta.state === "ready") out.push(Object.freeze({ name, mountpoint: this.pathOf(name) }));
    this.listed = { generation: this.meta.generation, volumes: Object.freeze(out) as VolumeSummary[] };
    return this.listed.volumes;
  }

  async prepareMount(name: string, arrivedAt = performance.now()): Promise<string> {
    // On a local tree a Mount's checks are synchronous, without the awaits of the general
    // path below: usually one lstat of the volume's directory, which proves the root live
    // too; otherwise a stat of the root and the lstat, which say what is wrong.
    const path = this.pathOf(name);
    if (this.localTree && this.monitor?.confirmsLive(path)) return path;
    const local = this.localTree ? this.monitor?.checkLocally() : undefined;
    if (local) {
      if (local.state !== "live") throw new PluginError("BACKEND_FAILED", local.detail, { volume: name });
      try {
        requireVolumeDirectorySync(path, name);
      } catch (error) {
        if (storageUnavailable(error)) this.monitor?.invalidate();
        throw error;
      }
      return path;
    }
    await this.requireLive(name, arrivedAt);
    return this.watchStorage(this.prepareMountChecked(name));
  }

  private async prepareMountChecked(name: string): Promise<string> {
    // The driver's inspect just read the record under the same lock: the volume is "ready".
    await this.requireVolumeDirectory(name);
    return this.pathOf(name);
  }

  private async requireVolumeDirectory(name: string): Promise<void> {
    if (this.localTree) requireVolumeDirectorySync(this.pathOf(name), name);
    else await requireVolumeDirectory(this.pathOf(name), name);
  }

  async health(): Promise<StorageHealth> {
    const health: StorageHealth = this.monitor ? await this.monitor.check() : { state: "live", detail: `${this.root} (not probed)` };
    const failure = this.journal?.checkpointFailure;
    if (!failure) return health;
    // Creates and Removes still work (their intents are durable), but the log is not
    // emptied: the operator needs to know before the disk does.
    const since = new Date(failure.since).toISOString();
    return { ...health, detail: `${health.detail}; intent log: checkpoints failing since ${since} (${failure.message}), its segments are kept and retried` };
  }

  private async requireLive(volume: string, arrivedAt: number): Promise<void> {
    if (!this.monitor) return;
    const health = await this.monitor.check(arrivedAt);
    if (health.state !== "live") throw new PluginError("BACKEND_FAILED", health.detail, { volume });
  }

  /**
   * A last checkpoint of the intent log. Does not wait for the trash sweep (a large tree,
   * or a hung root): the next start resumes it.
   */
  async close(): Promise<void> {
    await this.intentLog?.close();
  }
}

/**
 * Deletes `dir` if it is an empty directory (the common volume at Remove): false when it
 * holds data or is a symlink, which rmdir refuses. On the thread pool even on a local
 * tree: freeing a directory's inode waits for the filesystem's journal commit, which the
 * fsyncs of concurrent operations keep busy, and the event loop must not wait with it (a
 * third of crud's time, profiled).
 */
async function removeIfEmpty(dir: string): Promise<boolean> {
  try {
    await POOLED.rmdir(dir);
    return true;
  } catch (error) {
    const code = errnoCode(error);
    if (code === "ENOTEMPTY" || code === "EEXIST" || code === "ENOTDIR") return false;
    throw error;
  }
}
