import { lstat, readdir, readlink } from "node:fs/promises";
import { join } from "node:path";

/**
 * A comparable picture of a directory tree: every entry's relative path with its type,
 * owner, mode and (for files) size, (for directories) mtime, (for symlinks) target. Two
 * equal snapshots mean nothing was created, deleted, renamed, chowned or chmodded in it.
 */
export async function snapshotTree(root: string, options: { recursive?: boolean } = {}): Promise<string[]> {
  const recursive = options.recursive ?? true;
  const out: string[] = [];
  async function walk(dir: string, rel: string): Promise<void> {
    const entries = (await readdir(dir)).sort();
    for (const entry of entries) {
      const path = join(dir, entry);
      const relPath = rel === "" ? entry : `${rel}/${entry}`;
      const info = await lstat(path);
      const common = `${JSON.stringify(relPath)} mode=${info.mode.toString(8)} uid=${info.uid} gid=${info.gid}`;
      if (info.isSymbolicLink()) {
        out.push(`${common} -> ${await readlink(path)}`);
      } else if (info.isDirectory()) {
        out.push(`${common} dir mtime=${info.mtimeMs}`);
        if (recursive) await walk(path, relPath);
      } else {
        out.push(`${common} size=${info.size}`);
      }
    }
  }
  const top = await lstat(root);
  out.push(`. mode=${top.mode.toString(8)} uid=${top.uid} gid=${top.gid} mtime=${top.mtimeMs}`);
  await walk(root, "");
  return out;
}

/** The entry's lstat, or undefined when it does not exist. */
export async function lstatOrUndefined(path: string) {
  try {
    return await lstat(path);
  } catch (error) {
    if ((error as { code?: unknown }).code === "ENOENT") return undefined;
    throw error;
  }
}
