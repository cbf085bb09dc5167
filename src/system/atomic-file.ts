import { constants } from "node:fs";
import { link, lstat, open, readdir, readFile, unlink } from "node:fs/promises";
import { hostname } from "node:os";
import { dirname, join } from "node:path";
import { type FsSteps, POOLED } from "./fs-steps.ts";

/** Temporary files name their host and process, so leftovers can be told apart on a shared root. */
const TMP_PREFIX = ".tmp-";
const HOST = hostname().replace(/[^A-Za-z0-9.-]/g, "_");

/** This host's name as written into files other hosts may see. */
export function hostIdentity(): string {
  return HOST;
}
/** Another host's leftover older than this is abandoned, not in flight. */
const ABANDONED_MS = 60 * 60 * 1000;

/** A fresh temporary name in `path`'s directory; dotted, so directory listings skip it. */
function tempPathBeside(path: string): string {
  return join(dirname(path), `${TMP_PREFIX}${HOST}-${process.pid}-${crypto.randomUUID()}`);
}

/**
 * Replaces `path` with `data` so that readers (on this host or, on a shared filesystem,
 * any other) see either the old or the new content, never a torn one, and so that the
 * new content survives a crash once this returns: write a temporary file in the same
 * directory, fsync it, rename it over the target, fsync the directory (shared with
 * concurrent writers, see FsSteps.syncDirectory). `durable: false` skips both fsyncs,
 * for files whose loss in a crash of this host is harmless. `steps` may be BLOCKING for
 * a directory on a local filesystem (see FsSteps).
 */
export async function writeFileAtomic(path: string, data: string, mode: number, options: AtomicWriteOptions = {}): Promise<void> {
  await (await stageFile(path, data, mode, options)).commit();
}

export interface AtomicWriteOptions {
  durable?: boolean;
  steps?: FsSteps;
}

/** The first half of writeFileAtomic: the new content sits (fsynced) beside `path`. */
export interface StagedFile {
  /** The second half: renames it over `path`, then waits for the directory's fsync. */
  commit(): Promise<void>;
  /** Deletes it instead; harmless after a commit or a failed commit. */
  discard(): Promise<void>;
}

/**
 * Writes the temporary file of a writeFileAtomic now and renames it later: two files an
 * operation writes one after the other are staged together, so their fsyncs wait for
 * the disk once instead of twice.
 */
export async function stageFile(path: string, data: string, mode: number, options: AtomicWriteOptions = {}): Promise<StagedFile> {
  const durable = options.durable ?? true;
  const steps = options.steps ?? POOLED;
  const tmp = tempPathBeside(path);
  const discard = () => steps.unlink(tmp).catch(() => {});
  try {
    await steps.createFile(tmp, data, mode, durable);
  } catch (error) {
    await discard();
    throw error;
  }
  return {
    async commit() {
      try {
        await steps.rename(tmp, path);
      } catch (error) {
        await discard();
        throw error;
      }
      if (durable) await steps.syncDirectory(dirname(path));
    },
    discard,
  };
}

/**
 * Creates `path` with `data` unless it exists, in one step that every client of a shared
 * filesystem agrees on: the content goes to a temporary file that is then hard-linked
 * to `path` (link fails when the name exists). Readers never see a half-written file,
 * which an O_EXCL create followed by a write would show them. Returns false when `path`
 * existed. Not fsynced: callers use it for markers whose loss in a crash is harmless.
 */
export async function createFileExclusive(path: string, data: string, mode: number): Promise<boolean> {
  const tmp = tempPathBeside(path);
  const handle = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
  try {
    await handle.writeFile(data);
    await handle.chmod(mode);
  } finally {
    await handle.close();
  }
  try {
    await link(tmp, path);
    return true;
  } catch (error) {
    if ((error as { code?: string }).code === "EEXIST") return false;
    throw error;
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

/** Reads a file without following a symlink planted in its place; undefined if absent. */
export async function readFileNoFollow(path: string): Promise<string | undefined> {
  try {
    // One call (not open + read + close): a single trip to the thread pool on the Get path.
    return await readFile(path, { encoding: "utf8", flag: constants.O_RDONLY | constants.O_NOFOLLOW });
  } catch (error) {
    if ((error as { code?: string }).code === "ENOENT") return undefined;
    throw error;
  }
}

/**
 * Deletes temporary files that interrupted writes (a crash between write and rename)
 * left in `dir`: this host's from processes that are gone, and anyone's that are old.
 * Another host's fresh temporary file may be a write in flight and stays.
 */
export async function removeStaleTempFiles(dir: string): Promise<number> {
  let removed = 0;
  for (const entry of await readdir(dir)) {
    if (!entry.startsWith(TMP_PREFIX)) continue;
    const match = new RegExp(`^${TMP_PREFIX.replace(".", "\\.")}(.+)-(\\d+)-[0-9a-f-]{36}$`).exec(entry);
    const ours = match?.[1] === HOST && Number(match[2]) !== process.pid && !processAlive(Number(match[2]));
    let old = false;
    if (!ours) {
      try {
        old = Date.now() - (await lstat(join(dir, entry))).mtimeMs > ABANDONED_MS;
      } catch {
        continue;
      }
    }
    if (ours || old) {
      await unlink(join(dir, entry)).catch(() => {});
      removed++;
    }
  }
  return removed;
}

/** Whether a process of this host with that pid exists (EPERM: it exists, not ours to signal). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === "EPERM";
  }
}
