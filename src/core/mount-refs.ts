import { Database } from "bun:sqlite";
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync } from "node:fs";
import { join } from "node:path";
import { messageOf, PluginError } from "./errors.ts";

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

/** The kernel's per-boot random id; mounts cannot outlive a reboot. */
export function currentBootId(): string {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    return "unknown";
  }
}

/**
 * Reference counts of (volume, mount ID) pairs on this host, kept in SQLite so that a
 * plugin restart, even after SIGKILL, still knows which volumes are in use and accepts
 * the engine's Unmount for IDs it issued before. The engine may Mount one ID twice
 * (`docker cp`), so each pair is counted, not just recorded.
 *
 * Durability: in WAL mode every committed change is in the kernel's page cache when the
 * call returns, so it survives any crash of this process (SIGKILL included). Only a crash
 * of the kernel or a power loss could drop it, and either is a reboot, after which these
 * references are void anyway (they are reset by boot id). So nothing is fsynced: an fsync
 * here would block the event loop on the container start/stop path for nothing.
 */
export class MountRefs {
  private readonly db: Database;
  /** In-memory mirror for the hot path: volume -> mount ID -> count. */
  private readonly byVolume = new Map<string, Map<string, number>>();
  private readonly upsert;
  private readonly decrement;
  private readonly deleteZero;

  private constructor(db: Database) {
    this.db = db;
    this.upsert = db.prepare(
      "INSERT INTO mounts (volume, mount_id, count) VALUES (?1, ?2, 1) " +
        "ON CONFLICT (volume, mount_id) DO UPDATE SET count = count + 1",
    );
    this.decrement = db.prepare(
      "UPDATE mounts SET count = count - 1 WHERE volume = ?1 AND mount_id = ?2 AND count > 1",
    );
    this.deleteZero = db.prepare("DELETE FROM mounts WHERE volume = ?1 AND mount_id = ?2");
    const rows = db.query("SELECT volume, mount_id, count FROM mounts").all() as {
      volume: string;
      mount_id: string;
      count: number;
    }[];
    for (const row of rows) this.mirror(row.volume).set(row.mount_id, row.count);
  }

  static open(options: MountRefsOptions): MountRefs {
    const file = join(options.stateDir, "mounts.db");
    try {
      mkdirSync(options.stateDir, { recursive: true, mode: 0o700 });
    } catch (error) {
      throw stateError(options.stateDir, error);
    }
    try {
      return MountRefs.openFile(file, options.bootId ?? currentBootId());
    } catch (error) {
      if (!existsSync(file)) throw stateError(file, error);
      // Locked is not damaged: never move a live process's database aside.
      if (isBusy(error)) {
        throw stateError(file, new Error("it is in use by another process; is a plugin already running with this state directory?"));
      }
      // A damaged database must not keep the plugin (and so Docker) from starting;
      // keep the damaged file for inspection and begin empty.
      const aside = `${file}.corrupt-${Date.now()}`;
      renameSync(file, aside);
      for (const suffix of ["-wal", "-shm"]) {
        if (existsSync(file + suffix)) renameSync(file + suffix, aside + suffix);
      }
      options.onQuarantine?.(file, aside, error);
      try {
        return MountRefs.openFile(file, options.bootId ?? currentBootId());
      } catch (again) {
        throw stateError(file, again);
      }
    }
  }

  private static openFile(file: string, bootId: string): MountRefs {
    // Create the file 0600 before SQLite does (it would use the umask); the WAL and
    // shared-memory files inherit the database file's mode.
    closeSync(openSync(file, "a", 0o600));
    chmodSync(file, 0o600);
    const db = new Database(file, { create: true, strict: true });
    try {
      // One process owns the state: with the lock held for the connection's lifetime, a
      // commit takes no file locks and keeps the WAL index in memory (no -shm), which
      // makes each Mount's and Unmount's write about 2.5x cheaper. busy_timeout comes
      // first: a plugin that is still exiting gets 5 s to let go.
      db.exec("PRAGMA busy_timeout = 5000; PRAGMA locking_mode = EXCLUSIVE; PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;");
      db.exec(SCHEMA);
      db.exec("PRAGMA quick_check");
      const stored = db.query("SELECT value FROM meta WHERE key = 'boot_id'").get() as
        | { value: string }
        | null;
      if (stored?.value !== bootId) {
        db.transaction(() => {
          db.exec("DELETE FROM mounts");
          db.query("INSERT OR REPLACE INTO meta (key, value) VALUES ('boot_id', ?1)").run(bootId);
        })();
      }
      return new MountRefs(db);
    } catch (error) {
      db.close();
      throw error;
    }
  }

  private mirror(volume: string): Map<string, number> {
    let ids = this.byVolume.get(volume);
    if (!ids) {
      ids = new Map();
      this.byVolume.set(volume, ids);
    }
    return ids;
  }

  /** Records one more mount of `volume` under `mountId`. */
  add(volume: string, mountId: string): void {
    try {
      this.upsert.run(volume, mountId);
    } catch (error) {
      throw stateError("mounts.db", error, volume);
    }
    const ids = this.mirror(volume);
    ids.set(mountId, (ids.get(mountId) ?? 0) + 1);
  }

  /**
   * Drops one mount of `volume` under `mountId`. Returns false when the pair was not
   * known (an Unmount for an ID from before a reboot, or one sent twice): that is fine.
   */
  release(volume: string, mountId: string): boolean {
    const ids = this.byVolume.get(volume);
    const count = ids?.get(mountId);
    if (!ids || count === undefined) return false;
    try {
      if (count > 1) this.decrement.run(volume, mountId);
      else this.deleteZero.run(volume, mountId);
    } catch (error) {
      throw stateError("mounts.db", error, volume);
    }
    if (count > 1) ids.set(mountId, count - 1);
    else ids.delete(mountId);
    if (ids.size === 0) this.byVolume.delete(volume);
    return true;
  }

  /** Active mounts of `volume` on this host (sum over its mount IDs). */
  count(volume: string): number {
    let total = 0;
    for (const n of this.byVolume.get(volume)?.values() ?? []) total += n;
    return total;
  }

  /** Every volume with mounts on this host and its count. */
  snapshot(): Map<string, number> {
    const out = new Map<string, number>();
    for (const volume of this.byVolume.keys()) out.set(volume, this.count(volume));
    return out;
  }

  close(): void {
    // Prepared statements keep SQLite's connection (and its file descriptors) alive
    // after close() unless they are finalized first.
    for (const statement of [this.upsert, this.decrement, this.deleteZero]) statement.finalize();
    this.db.close();
  }
}

function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && code.startsWith("SQLITE_BUSY");
}

function stateError(file: string, cause: unknown, volume?: string): PluginError {
  const detail = messageOf(cause);
  return new PluginError("STATE_FAILED", `mount state ${file}: ${detail}`, { cause, volume });
}
