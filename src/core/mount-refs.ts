import { existsSync, ftruncateSync, lstatSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { errnoCode, messageOf, PluginError } from "./errors.ts";
import { MountSlots, type SlotEntry, SlotsDamaged } from "./mount-slots.ts";
import { LockHeld, OwnerLock } from "../system/owner-lock.ts";
import { currentBootId } from "../system/process-identity.ts";

/** How long a start waits for a plugin that still holds the state directory (one exiting). */
const OWNER_WAIT_MS = 5000;

export interface MountRefsOptions {
  /** Directory holding the state files (created 0700 when missing). */
  stateDir: string;
  /** Identifies the current boot; references from another boot are dropped. */
  bootId?: string;
  /** Called when a damaged state file was moved aside. */
  onQuarantine?: (from: string, to: string, cause: unknown) => void;
}

/**
 * Reference counts of (volume, mount ID) pairs on this host, kept in a mapped slot table
 * (mount-slots.ts) so that a plugin restart, even after SIGKILL, still knows which volumes
 * are in use and accepts the engine's Unmount for IDs it issued before. The engine may
 * Mount one ID twice (`docker cp`), so each pair is counted, not just recorded.
 *
 * `owner.lock` is held (flock) for the process's lifetime, so a second plugin on the same
 * state directory is refused instead of sharing the table. Older releases held SQLite's
 * lock on `mounts.db` instead, and the oldest kept the references in it: the first start
 * after an upgrade checks that no older plugin holds it and moves its references into a
 * new slot table. This release keeps `mounts.db` empty and holds SQLite's lock on it
 * too, so an older release started beside it refuses as well.
 */
export class MountRefs {
  private readonly lock: OwnerLock;
  private readonly slots: MountSlots;
  /** In-memory mirror for the hot path: volume -> mount ID -> its slot and count. */
  private readonly byVolume = new Map<string, Map<string, { slot: number; count: number }>>();

  private constructor(lock: OwnerLock, slots: MountSlots, entries: SlotEntry[]) {
    this.lock = lock;
    this.slots = slots;
    for (const entry of entries) this.mirror(entry.volume).set(entry.mountId, { slot: entry.slot, count: entry.count });
  }

  static open(options: MountRefsOptions): MountRefs {
    try {
      mkdirSync(options.stateDir, { recursive: true, mode: 0o700 });
    } catch (error) {
      throw stateError(options.stateDir, error);
    }
    const bootId = options.bootId ?? currentBootId();
    const lockFile = join(options.stateDir, "owner.lock");
    const lock = takeLock(lockFile, () => OwnerLock.acquire(lockFile, OWNER_WAIT_MS));
    const file = join(options.stateDir, "mounts.slots");
    const database = join(options.stateDir, "mounts.db");
    let slots: MountSlots | undefined;
    try {
      // The first start after an upgrade: an older release's database. Its references
      // count only before the slot table exists; afterwards the table's are the current ones.
      const older = isOlderDatabase(database);
      const legacy = older ? legacyReferences(database, bootId, !existsSync(file), options) : [];
      // Older releases took SQLite's lock on mounts.db instead of owner.lock: holding that
      // too keeps one from starting beside this process (a rollback started too early).
      // Taken before the slot table is touched: a start refused here must leave no table
      // behind, or the next start would ignore what a running older release still counts.
      const fence = takeLock(database, () => lock.fenceSqlite(database, OWNER_WAIT_MS));
      let opened: { slots: MountSlots; entries: SlotEntry[] };
      try {
        opened = MountSlots.open(file, bootId, legacy);
      } catch (error) {
        if (!(error instanceof SlotsDamaged)) throw error;
        quarantine(file, [], error, options);
        opened = MountSlots.open(file, bootId);
      }
      slots = opened.slots;
      if (older) {
        // Emptied once the slot table holds its references: later starts never load SQLite.
        // Each step best effort: what is left (a -shm made a directory) is harmless, and
        // the references are in the slot table already.
        for (const suffix of ["-wal", "-shm"]) {
          try {
            rmSync(database + suffix, { force: true });
          } catch {}
        }
        try {
          ftruncateSync(fence, 0);
        } catch {}
      }
      return new MountRefs(lock, opened.slots, opened.entries);
    } catch (error) {
      slots?.close();
      lock.release();
      throw error instanceof PluginError ? error : stateError(file, error);
    }
  }

  private mirror(volume: string): Map<string, { slot: number; count: number }> {
    let ids = this.byVolume.get(volume);
    if (!ids) {
      ids = new Map();
      this.byVolume.set(volume, ids);
    }
    return ids;
  }

  /** Records one more mount of `volume` under `mountId`. */
  add(volume: string, mountId: string): void {
    const ids = this.mirror(volume);
    const known = ids.get(mountId);
    try {
      if (known) {
        this.slots.setCount(known.slot, known.count + 1);
        known.count++;
      } else {
        ids.set(mountId, { slot: this.slots.add(volume, mountId), count: 1 });
      }
    } catch (error) {
      if (ids.size === 0) this.byVolume.delete(volume);
      throw stateError("mounts.slots", error, volume);
    }
  }

  /**
   * Drops one mount of `volume` under `mountId`. Returns false when the pair was not
   * known (an Unmount for an ID from before a reboot, or one sent twice): that is fine.
   */
  release(volume: string, mountId: string): boolean {
    const ids = this.byVolume.get(volume);
    const known = ids?.get(mountId);
    if (!ids || !known) return false;
    try {
      if (known.count > 1) this.slots.setCount(known.slot, known.count - 1);
      else this.slots.release(known.slot);
    } catch (error) {
      throw stateError("mounts.slots", error, volume);
    }
    if (known.count > 1) known.count--;
    else ids.delete(mountId);
    if (ids.size === 0) this.byVolume.delete(volume);
    return true;
  }

  /** Active mounts of `volume` on this host (sum over its mount IDs). */
  count(volume: string): number {
    let total = 0;
    for (const known of this.byVolume.get(volume)?.values() ?? []) total += known.count;
    return total;
  }

  /** Every volume with mounts on this host and its count. */
  snapshot(): Map<string, number> {
    const out = new Map<string, number>();
    for (const volume of this.byVolume.keys()) out.set(volume, this.count(volume));
    return out;
  }

  close(): void {
    this.slots.close();
    this.lock.release();
  }
}

/** Moves a damaged state file (and its companions) aside for inspection and reports it. */
function quarantine(file: string, suffixes: string[], cause: unknown, options: MountRefsOptions): void {
  const aside = `${file}.corrupt-${Date.now()}`;
  renameSync(file, aside);
  for (const suffix of suffixes) {
    if (existsSync(file + suffix)) renameSync(file + suffix, aside + suffix);
  }
  options.onQuarantine?.(file, aside, cause);
}

/** Takes a lock of the state directory; one held for the whole wait means another plugin runs. */
function takeLock<T>(file: string, take: () => T): T {
  try {
    return take();
  } catch (error) {
    if (error instanceof LockHeld) throw stateError(file, new Error(IN_USE));
    throw stateError(file, error);
  }
}

const IN_USE = "it is in use by another process; is a plugin already running with this state directory?";

/**
 * A database an older release wrote: this release only keeps an empty one, as a lock.
 * Anything but a plain file is never opened; taking the lock refuses it with its name.
 */
function isOlderDatabase(file: string): boolean {
  try {
    const info = lstatSync(file);
    return info.isFile() && info.size > 0;
  } catch (error) {
    if (errnoCode(error) === "ENOENT") return false;
    throw error;
  }
}

function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && code.startsWith("SQLITE_BUSY");
}

/**
 * What an older release left in `file` (SQLite, loaded only then): the references of this
 * boot when there is no slot table yet (`wanted`), else none. A damaged database is moved
 * aside: it must not keep the plugin, and so Docker, from starting. One that an older
 * plugin still holds means that plugin is running.
 */
function legacyReferences(file: string, bootId: string, wanted: boolean, options: MountRefsOptions): [string, string, number][] {
  const { Database } = require("bun:sqlite") as typeof import("bun:sqlite");
  let db: import("bun:sqlite").Database | undefined;
  try {
    db = new Database(file, { readwrite: true, create: false, strict: true });
    // A write lock, as the older release held for its lifetime (and one exiting lets go).
    db.exec("PRAGMA busy_timeout = 5000; BEGIN IMMEDIATE; ROLLBACK;");
    if (!wanted) return [];
    // One killed while it created its tables holds no references: nothing to import.
    const tables = db.query("SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('meta', 'mounts')").all() as { name: string }[];
    if (tables.length < 2) return [];
    const stored = db.query("SELECT value FROM meta WHERE key = 'boot_id'").get() as { value: string } | null;
    if (stored?.value !== bootId) return [];
    const rows = db.query("SELECT volume, mount_id, count FROM mounts").all() as { volume: string; mount_id: string; count: number }[];
    return rows.map((row) => [row.volume, row.mount_id, row.count]);
  } catch (error) {
    if (isBusy(error)) throw stateError(file, new Error(IN_USE));
    db?.close();
    db = undefined;
    quarantine(file, ["-wal", "-shm"], error, options);
    return [];
  } finally {
    db?.close();
  }
}

function stateError(file: string, cause: unknown, volume?: string): PluginError {
  const detail = messageOf(cause);
  return new PluginError("STATE_FAILED", `mount state ${file}: ${detail}`, { cause, volume });
}
