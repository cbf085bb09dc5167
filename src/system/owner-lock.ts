import { dlopen, FFIType, read } from "bun:ffi";
import { closeSync, constants, fchmodSync, ftruncateSync, openSync, writeSync } from "node:fs";

const LOCK_EX = 2;
const LOCK_NB = 4;
const EINTR = 4;
const EWOULDBLOCK = 11;
/** How often a held lock is tried again while waiting for its owner to exit. */
const RETRY_MS = 25;

type Libc = {
  flock(fd: number, operation: number): number;
  __errno_location(): number | null;
};

let libc: Libc | undefined;

/**
 * flock(2) from the C library Bun itself runs on: neither Bun nor Node offers a file lock,
 * and this one is released by the kernel however the process ends (SIGKILL included).
 */
function loadLibc(): Libc {
  libc ??= dlopen("libc.so.6", {
    flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    __errno_location: { args: [], returns: FFIType.ptr },
  }).symbols as unknown as Libc;
  return libc;
}

/** A lock file was held by another process for the whole wait. */
export class LockHeld extends Error {}

/**
 * An exclusive lock on one file for the life of the process (or until `release`): how one
 * process owns a state directory. A second holder, in this process or another, is refused.
 */
export class OwnerLock {
  private constructor(
    readonly file: string,
    private fd: number | undefined,
  ) {}

  /**
   * Creates `file` (0600) if needed and takes its lock, waiting up to `waitMs` for a holder
   * that is still exiting (a restart) before throwing LockHeld. The file then names the
   * holder's pid, for an operator who wonders who has it.
   */
  static acquire(file: string, waitMs: number): OwnerLock {
    // Bun opens every descriptor close-on-exec: a child never inherits the lock.
    const fd = openSync(file, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
    try {
      const { flock, __errno_location } = loadLibc();
      const deadline = performance.now() + waitMs;
      for (;;) {
        if (flock(fd, LOCK_EX | LOCK_NB) === 0) break;
        // Read at once: errno is this thread's, and the next libc call may change it.
        const pointer = __errno_location();
        const errno = pointer === null ? 0 : read.i32(pointer, 0);
        if (errno !== EWOULDBLOCK && errno !== EINTR) throw new Error(`cannot lock ${file}: flock failed with errno ${errno}`);
        if (performance.now() >= deadline) throw new LockHeld(`${file} is locked by another process`);
        Bun.sleepSync(RETRY_MS);
      }
      // Only the holder writes, so a loose mode or a stale pid is fixed here.
      fchmodSync(fd, 0o600);
      ftruncateSync(fd, 0);
      writeSync(fd, `${process.pid}\n`, 0);
      return new OwnerLock(file, fd);
    } catch (error) {
      closeSync(fd);
      throw error;
    }
  }

  /** Lets go of the lock (closing its descriptor). Idempotent. */
  release(): void {
    if (this.fd === undefined) return;
    closeSync(this.fd);
    this.fd = undefined;
  }
}
