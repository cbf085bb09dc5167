import { dlopen, FFIType, ptr, read } from "bun:ffi";
import { closeSync, constants, fchmodSync, fstatSync, ftruncateSync, openSync, writeSync } from "node:fs";
import { constants as os } from "node:os";

const LOCK_EX = 2;
const LOCK_NB = 4;
/** Open file description locks (Linux 3.15): owned by this descriptor, so no other close in the process drops them, and they conflict with SQLite's classic ones. */
const F_OFD_SETLK = 37;
const F_WRLCK = 1;
const SEEK_SET = 0;
/** SQLite's lock bytes in a database file (os_unix.c): PENDING_BYTE, RESERVED_BYTE, then the SHARED range. */
const SQLITE_LOCK_START = 0x40000000;
const SQLITE_LOCK_BYTES = 512;
/** How often a held lock is tried again while waiting for its owner to exit. */
const RETRY_MS = 25;
/** Errors that say the lock cannot be had here at all: waiting would not help. */
const FATAL = new Set([os.errno.EBADF, os.errno.EINVAL, os.errno.ENOLCK, os.errno.ENOSYS, os.errno.EOPNOTSUPP, os.errno.EPERM]);
/** What another holder's conflicting lock looks like (fcntl says EACCES or EAGAIN). */
const HELD = new Set([os.errno.EWOULDBLOCK, os.errno.EAGAIN, os.errno.EACCES]);

type Libc = {
  flock(fd: number, operation: number): number;
  fcntl(fd: number, command: number, argument: number): number;
  __errno_location(): number | null;
};

let libc: Libc | undefined;

/**
 * flock(2) and fcntl(2) from the C library Bun itself runs on: neither Bun nor Node
 * offers a file lock, and these are released by the kernel however the process ends
 * (SIGKILL included).
 */
function loadLibc(): Libc {
  libc ??= dlopen("libc.so.6", {
    flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    fcntl: { args: [FFIType.i32, FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
    __errno_location: { args: [], returns: FFIType.ptr },
  }).symbols as unknown as Libc;
  return libc;
}

/**
 * errno right after a failed call: it is this thread's, and the next libc call may change
 * it. Never 0, which would read as success: -1 when it cannot be read.
 */
function lastErrno(lib: Libc): number {
  const pointer = lib.__errno_location();
  const errno = pointer === null ? 0 : read.i32(pointer, 0);
  return errno === 0 ? -1 : errno;
}

function errnoName(errno: number): string {
  const name = Object.entries(os.errno).find(([, value]) => value === errno)?.[0];
  return name ?? `errno ${errno}`;
}

/** A lock file was held by another process for the whole wait. */
export class LockHeld extends Error {}

/**
 * Tries `attempt` (0 = taken, else an errno) until it succeeds or `waitMs` is over. A
 * holder that is still exiting (a restart) gets that long; an error that says locking
 * cannot work here throws at once.
 */
function acquireWithin(file: string, waitMs: number, attempt: () => number): void {
  const deadline = performance.now() + waitMs;
  for (;;) {
    const errno = attempt();
    if (errno === 0) return;
    if (FATAL.has(errno)) throw new Error(`cannot lock ${file}: ${errnoName(errno)} (does this filesystem support locks?)`);
    // Anything else (a holder, EINTR, an errno that could not be read) is waited out.
    if (performance.now() >= deadline) {
      if (HELD.has(errno)) throw new LockHeld(`${file} is locked by another process`);
      throw new Error(`cannot lock ${file}: ${errnoName(errno)}`);
    }
    Bun.sleepSync(RETRY_MS);
  }
}

/** Opens `file` for the lock without following a symlink; a second name for another file is refused. */
function openLockFile(file: string): number {
  // Bun opens every descriptor close-on-exec: a child (mount.quobyte daemonizes) never
  // inherits the lock.
  const fd = openSync(file, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  try {
    const info = fstatSync(fd);
    // A hard link planted here would let the chmod and truncation below reach another file.
    if (!info.isFile() || info.nlink !== 1) throw new Error(`${file} is not a plain file of its own (${info.isFile() ? `${info.nlink} links` : "not a file"}); remove it`);
    fchmodSync(fd, 0o600);
    return fd;
  } catch (error) {
    closeSync(fd);
    throw error;
  }
}

/**
 * An exclusive lock on one file for the life of the process (or until `release`): how one
 * process owns a state directory. A second holder, in this process or another, is refused.
 */
export class OwnerLock {
  private readonly fds: number[];

  private constructor(fd: number) {
    this.fds = [fd];
  }

  /**
   * Creates `file` (0600) if needed and takes its lock, waiting up to `waitMs` for a holder
   * that is still exiting before throwing LockHeld. The file then names the holder's pid
   * (as this process sees it), for an operator who wonders who has it.
   */
  static acquire(file: string, waitMs: number): OwnerLock {
    const fd = openLockFile(file);
    try {
      const lib = loadLibc();
      acquireWithin(file, waitMs, () => (lib.flock(fd, LOCK_EX | LOCK_NB) === 0 ? 0 : lastErrno(lib)));
    } catch (error) {
      closeSync(fd);
      throw error;
    }
    try {
      // Only the holder writes, so a stale pid is replaced here; a full disk must not stop the start.
      ftruncateSync(fd, 0);
      writeSync(fd, `${process.pid}\n`, 0);
    } catch {}
    return new OwnerLock(fd);
  }

  /**
   * Also takes SQLite's write lock on `database` (created empty if missing), for as long
   * as this lock is held: releases that kept their lock in an SQLite database there
   * then find it busy and refuse to start beside this process. Returns the descriptor,
   * which holds the lock until `release`.
   */
  fenceSqlite(database: string, waitMs: number): number {
    const fd = openLockFile(database);
    try {
      const lib = loadLibc();
      // struct flock on x86-64 Linux: l_type, l_whence (int16 each), l_start, l_len (int64 at 8
      // and 16), l_pid (int32 at 24, 0 as open file description locks require).
      const request = Buffer.alloc(32);
      request.writeInt16LE(F_WRLCK, 0);
      request.writeInt16LE(SEEK_SET, 2);
      request.writeBigInt64LE(BigInt(SQLITE_LOCK_START), 8);
      request.writeBigInt64LE(BigInt(SQLITE_LOCK_BYTES), 16);
      acquireWithin(database, waitMs, () => (lib.fcntl(fd, F_OFD_SETLK, ptr(request)) === 0 ? 0 : lastErrno(lib)));
    } catch (error) {
      closeSync(fd);
      throw error;
    }
    this.fds.push(fd);
    return fd;
  }

  /** Lets go of the lock (closing its descriptors). Idempotent. */
  release(): void {
    for (const fd of this.fds.splice(0)) closeSync(fd);
  }
}
