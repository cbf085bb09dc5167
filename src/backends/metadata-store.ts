import { lstat, mkdir, readdir, unlink } from "node:fs/promises";
import { join } from "node:path";
import { errnoCode, PluginError } from "../core/errors.ts";
import { readFileNoFollow, syncDirectory, writeFileAtomic } from "../system/atomic-file.ts";

/**
 * One JSON file per volume in a directory, named exactly like the volume (names are
 * validated single path components without a leading dot, so they cannot collide with
 * our dotted temporary files). Writes are atomic and durable; reads never follow a
 * symlink planted in place of a file.
 */
export class MetadataStore<T> {
  constructor(
    readonly dir: string,
    private readonly mode: number,
  ) {}

  /** Creates the directory and refuses one that is a symlink or not a directory. */
  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o755 });
    await requireRealDirectory(this.dir);
  }

  async read(name: string): Promise<T | undefined> {
    let text: string | undefined;
    try {
      text = await readFileNoFollow(join(this.dir, name));
    } catch (error) {
      throw metadataError(`cannot read metadata of volume ${JSON.stringify(name)}`, error, name);
    }
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text) as T;
    } catch (error) {
      throw metadataError(`metadata of volume ${JSON.stringify(name)} is not valid JSON`, error, name);
    }
  }

  async write(name: string, value: T): Promise<void> {
    try {
      await writeFileAtomic(join(this.dir, name), `${JSON.stringify(value)}\n`, this.mode);
    } catch (error) {
      throw metadataError(`cannot write metadata of volume ${JSON.stringify(name)}`, error, name);
    }
  }

  async delete(name: string): Promise<void> {
    try {
      await unlink(join(this.dir, name));
      await syncDirectory(this.dir);
    } catch (error) {
      if (errnoCode(error) === "ENOENT") return;
      throw metadataError(`cannot delete metadata of volume ${JSON.stringify(name)}`, error, name);
    }
  }

  /** Names of all stored volumes. */
  async names(): Promise<string[]> {
    try {
      const entries = await readdir(this.dir);
      return entries.filter((entry) => !entry.startsWith("."));
    } catch (error) {
      throw metadataError(`cannot list ${this.dir}`, error);
    }
  }
}

/** Throws unless `path` is a directory itself (not a symlink to one). */
export async function requireRealDirectory(path: string): Promise<void> {
  const info = await lstat(path);
  if (info.isSymbolicLink() || !info.isDirectory()) {
    throw new PluginError("BACKEND_FAILED", `${path} must be a directory, not a symlink or file`);
  }
}

function metadataError(message: string, cause: unknown, volume?: string): PluginError {
  const detail = cause instanceof Error ? `: ${cause.message}` : "";
  return new PluginError("BACKEND_FAILED", `${message}${detail}`, { cause, volume });
}
