import { closeSync, constants, fchmodSync, fchownSync, fsync, lstatSync, mkdirSync, openSync, renameSync, rmdirSync, type Stats, unlinkSync, writeSync } from "node:fs";
import { lstat, mkdir, open, rename, rmdir, unlink } from "node:fs/promises";
import { promisify } from "node:util";
import { DirectorySync, fsyncDirectory } from "./directory-sync.ts";

/** Flags of a file created for an atomic write: new, never through a symlink planted in its place. */
const CREATE_NEW = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
/** A volume directory opened to change its owner and mode: a symlink swapped in is refused. */
const DIRECTORY_NO_FOLLOW = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

const fsyncDescriptor = promisify(fsync);

export interface OwnerAndMode {
  uid?: number;
  gid?: number;
  mode?: number;
}

/**
 * The filesystem steps of metadata writes and of volume Create and Remove, in two kinds.
 * POOLED runs each on the thread pool: a network filesystem may hang, the event loop
 * must not. BLOCKING runs them on the event loop, for a tree of local filesystems only,
 * where they cannot hang and a step costs ~3 µs of CPU instead of a ~30 µs round trip
 * to the pool (a Create and a Remove take some twenty steps). fsync goes to the pool in
 * both: it waits for the disk, and the loop must not. The price, measured: while other
 * Creates and Removes fsync, a blocking rename or open waits for the journal (~0.1 ms
 * on average), and requests behind it wait too.
 */
export interface FsSteps {
  lstat(path: string): Promise<Stats>;
  mkdir(path: string, mode: number): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  rmdir(path: string): Promise<void>;
  /** Creates `path` (it must not exist) holding `data` with exactly `mode`; fsynced when `durable`. */
  createFile(path: string, data: string, mode: number, durable: boolean): Promise<void>;
  /** chown (parts left undefined stay) then chmod of directory `dir`, through a descriptor that refuses a symlink. */
  setOwnerAndMode(dir: string, change: OwnerAndMode): Promise<void>;
  /**
   * Makes the renames, unlinks and mkdirs done in `dir` durable: resolves after an fsync
   * of `dir` that started after this call; concurrent callers share one (group commit).
   */
  syncDirectory(dir: string): Promise<void>;
}

/** One per kind and process: every writer of a directory shares its fsyncs. */
const pooledDirectories = new DirectorySync(fsyncDirectory);
const blockingDirectories = new DirectorySync(async (dir) => {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fsyncDescriptor(fd);
  } finally {
    closeSync(fd);
  }
});

export const POOLED: FsSteps = {
  lstat: (path) => lstat(path),
  mkdir: async (path, mode) => {
    await mkdir(path, { mode });
  },
  rename,
  unlink,
  rmdir: (path) => rmdir(path),
  async createFile(path, data, mode, durable) {
    const handle = await open(path, CREATE_NEW, mode);
    try {
      await handle.writeFile(data);
      // The umask cut the mode given to open.
      await handle.chmod(mode);
      if (durable) await handle.sync();
    } finally {
      await handle.close();
    }
  },
  async setOwnerAndMode(dir, change) {
    const handle = await open(dir, DIRECTORY_NO_FOLLOW);
    try {
      if (change.uid !== undefined || change.gid !== undefined) await handle.chown(change.uid ?? -1, change.gid ?? -1);
      // After chown: it clears setuid/setgid bits, which the mode may ask for.
      if (change.mode !== undefined) await handle.chmod(change.mode);
    } finally {
      await handle.close();
    }
  },
  syncDirectory: (dir) => pooledDirectories.sync(dir),
};

export const BLOCKING: FsSteps = {
  lstat: async (path) => lstatSync(path),
  mkdir: async (path, mode) => {
    mkdirSync(path, { mode });
  },
  rename: async (from, to) => renameSync(from, to),
  unlink: async (path) => unlinkSync(path),
  rmdir: async (path) => rmdirSync(path),
  async createFile(path, data, mode, durable) {
    const fd = openSync(path, CREATE_NEW, mode);
    try {
      writeAll(fd, data);
      fchmodSync(fd, mode);
      if (durable) await fsyncDescriptor(fd);
    } finally {
      closeSync(fd);
    }
  },
  async setOwnerAndMode(dir, change) {
    const fd = openSync(dir, DIRECTORY_NO_FOLLOW);
    try {
      if (change.uid !== undefined || change.gid !== undefined) fchownSync(fd, change.uid ?? -1, change.gid ?? -1);
      if (change.mode !== undefined) fchmodSync(fd, change.mode);
    } finally {
      closeSync(fd);
    }
  },
  syncDirectory: (dir) => blockingDirectories.sync(dir),
};

/** The steps for a tree that is (or is not) all local filesystems. */
export function fsStepsFor(localTree: boolean): FsSteps {
  return localTree ? BLOCKING : POOLED;
}

function writeAll(fd: number, data: string): void {
  const bytes = Buffer.from(data);
  for (let written = 0; written < bytes.length; ) written += writeSync(fd, bytes, written, bytes.length - written);
}
