import { constants } from "node:fs";
import { open } from "node:fs/promises";

async function fsyncOpened(path: string, flags: number): Promise<void> {
  const handle = await open(path, flags);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** One fsync of a directory: makes the renames, unlinks and mkdirs done in it durable. */
export function fsyncDirectory(dir: string): Promise<void> {
  return fsyncOpened(dir, constants.O_RDONLY | constants.O_DIRECTORY);
}

/**
 * fsync of a file or directory, through a descriptor that refuses a symlink; nothing when
 * it is gone (or a symlink now): there is nothing of ours left to make durable.
 */
export async function fsyncIfPresent(path: string): Promise<void> {
  try {
    await fsyncOpened(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code !== "ENOENT" && code !== "ELOOP") throw error;
  }
}

const ignore = () => {};

/**
 * Group commit for directory fsyncs. Concurrent Creates and Removes of different volumes
 * each need "my rename is durable"; one fsync that STARTED after a rename covers it, so
 * callers arriving while an fsync runs all wait for one more fsync, started once the
 * running one ends, and share it. A caller is never answered by an fsync that started
 * before it asked (that one may have missed its rename). With four callers at once this
 * turns four fsyncs into at most two. The intent log uses one per segment file, with a
 * round that writes the queued lines before its fdatasync.
 */
export class DirectorySync {
  /** Per directory: the fsync in flight. */
  private readonly running = new Map<string, Promise<void>>();
  /** Per directory: the fsync queued to start when the one in flight ends, shared by all who wait. */
  private readonly queued = new Map<string, Promise<void>>();

  constructor(private readonly fsyncOnce: (dir: string) => Promise<void> = fsyncDirectory) {}

  /** Resolves once an fsync of `dir` that started after this call has finished. */
  sync(dir: string): Promise<void> {
    const running = this.running.get(dir);
    if (!running) return this.begin(dir);
    let next = this.queued.get(dir);
    if (!next) {
      next = running.then(ignore, ignore).then(() => {
        this.queued.delete(dir);
        return this.begin(dir);
      });
      this.queued.set(dir, next);
    }
    return next;
  }

  private begin(dir: string): Promise<void> {
    const done: Promise<void> = this.fsyncOnce(dir).finally(() => {
      // With a queued round the entry stays until that round replaces it, so that a caller
      // arriving in between joins the queued round instead of starting a third fsync.
      if (this.running.get(dir) === done && !this.queued.has(dir)) this.running.delete(dir);
    });
    this.running.set(dir, done);
    return done;
  }
}
