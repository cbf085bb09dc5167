import { Database } from "bun:sqlite";
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, renameSync } from "node:fs";
import { join } from "node:path";
import { messageOf, PluginError } from "./errors.ts";
import { MountSlots, type SlotEntry, SlotsDamaged } from "./mount-slots.ts";
import { currentBootId } from "../system/process-identity.ts";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS mounts (
  volume   TEXT NOT NULL,
  mount_id TEXT NOT NULL,
  count    INTEGER NOT NULL CHECK (count > 0),
  PRIMARY KEY (volume, mount_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
`;

export interface MountRefsOptions {
  /** Directory holding the database (created 0700 when missing). */
  stateDir: string;
  /** Identifies the current boot; references from another boot are dropped. */
  bootId?: string;
  /** Called when a damaged database was moved aside. */
  onQuarantine?: (from: string, to: string, cause: unknown) => void;
}

/**
 * Reference counts of (volume, mount ID) pairs on this host, kept in a mapped slot table
 * (mount-slots.ts) so that a plugin restart, even after SIGKILL, still knows which volumes
 * are in use and accepts the engine's Unmount for IDs it issued before. The engine may
 * Mount one ID twice (`docker cp`), so each pair is counted, not just recorded.
 *
 * `mounts.db` (SQLite) is the state directory's owner lock: it is held in EXCLUSIVE mode
 * for the process's lifetime, which is the one cross-process file lock Bun offers, so a
 * second plugin on the same state directory is refused instead of sharing the table.
 * Releases before the slot table kept the references in its `mounts` table; they are
 * moved into a new table once.
 */
export class MountRefs {
  private readonly db: Database;
  private readonly slots: MountSlots;
  /** In-memory mirror for the hot path: volume -> mount ID -> its slot and count. */
  private readonly byVolume = new Map<string, Map<string, { slot: number; count: number }>>();

  private constructor(db: Database, slots: MountSlots, entries: SlotEntry[]) {
    this.db = db;
    this.slots = slots;
    for (const entry of entries) this.mirror(entry.volume).set(entry.mountId, { slot: entry.slot, count: entry.count });
  }

  static open(options: MountRefsOptions): MountRefs {
    const file = join(options.stateDir, "mounts.db");
    try {
      mkdirSync(options.stateDir, { recursive: true, mode: 0o700 });
    } catch (error) {
      throw stateError(options.stateDir, error);
    }
    const bootId = options.bootId ?? currentBootId();
    let db: Database;
    try {
      db = MountRefs.openLock(file);
    } catch (error) {
      if (!existsSync(file)) throw stateError(file, error);
      // Locked is not damaged: never move a live process's database aside.
      if (isBusy(error)) {
        throw stateError(file, new Error("it is in use by another process; is a plugin already running with this state directory?"));
      }
      // A damaged database must not keep the plugin (and so Docker) from starting;
      // keep the damaged file for inspection and begin empty.
      quarantine(file, ["-wal", "-shm"], error, options);
      try {
        db = MountRefs.openLock(file);
      } catch (again) {
        throw stateError(file, again);
      }
    }
    try {
      return MountRefs.openSlots(db, join(options.stateDir, "mounts.slots"), bootId, options);
    } catch (error) {
      db.close();
      throw error instanceof PluginError ? error : stateError(join(options.stateDir, "mounts.slots"), error);
    }
  }

  /** Opens the database and takes its lock for good (a write in EXCLUSIVE mode keeps it). */
  private static openLock(file: string): Database {
    // Create the file 0600 before SQLite does (it would use the umask); the WAL and
    // shared-memory files inherit the database file's mode.
    closeSync(openSync(file, "a", 0o600));
    chmodSync(file, 0o600);
    const db = new Database(file, { create: true, strict: true });
    try {
      // busy_timeout comes first: a plugin that is still exiting gets 5 s to let go.
      db.exec("PRAGMA busy_timeout = 5000; PRAGMA locking_mode = EXCLUSIVE; PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;");
      db.exec(SCHEMA);
      db.exec("PRAGMA quick_check");
      db.query("INSERT OR REPLACE INTO meta (key, value) VALUES ('owner_pid', ?1)").run(String(process.pid));
      return db;
    } catch (error) {
      db.close();
      throw error;
    }
  }

  private static openSlots(db: Database, file: string, bootId: string, options: MountRefsOptions): MountRefs {
    // References a release before the slot table left in the database, if any.
    const stored = db.query("SELECT value FROM meta WHERE key = 'boot_id'").get() as { value: string } | null;
    const legacy =
      stored?.value === bootId && !existsSync(file)
        ? (db.query("SELECT volume, mount_id, count FROM mounts").all() as { volume: string; mount_id: string; count: number }[]).map(
            (row) => [row.volume, row.mount_id, row.count] as [string, string, number],
          )
        : [];
    let opened: { slots: MountSlots; entries: SlotEntry[] };
    try {
      opened = MountSlots.open(file, bootId, legacy);
    } catch (error) {
      if (!(error instanceof SlotsDamaged)) throw error;
      quarantine(file, [], error, options);
      opened = MountSlots.open(file, bootId);
    }
    // Deleted only once the slot table holds them; after a crash in between the table
    // exists, so they are not imported twice.
    db.transaction(() => {
      db.exec("DELETE FROM mounts");
      db.query("INSERT OR REPLACE INTO meta (key, value) VALUES ('boot_id', ?1)").run(bootId);
    })();
    return new MountRefs(db, opened.slots, opened.entries);
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
    this.db.close();
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

function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && code.startsWith("SQLITE_BUSY");
}

function stateError(file: string, cause: unknown, volume?: string): PluginError {
  const detail = messageOf(cause);
  return new PluginError("STATE_FAILED", `mount state ${file}: ${detail}`, { cause, volume });
}
