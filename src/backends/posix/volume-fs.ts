import { lstatSync, type Stats } from "node:fs";
import { lstat } from "node:fs/promises";
import { errnoCode, messageOf, PluginError } from "../../core/errors.ts";
import { type FsSteps, POOLED } from "../../system/fs-steps.ts";
import { lookAgainWhileMissing } from "../../system/name-cache.ts";
import type { Ownership } from "./options.ts";

/** Filesystem steps of the posix backend that never follow a symlink out of the root. */

/** Throws unless `dir` is a directory itself: a symlink planted there is refused, not followed. */
export async function requireVolumeDirectory(dir: string, name: string): Promise<void> {
  let info: Stats;
  try {
    info = await lstat(dir);
  } catch (error) {
    throw lstatFailed(dir, name, error);
  }
  checkVolumeDirectory(dir, name, info);
}

/**
 * The same check without a thread-pool round trip (a quarter of a Mount's cost), only
 * for a root on a local filesystem: there an lstat cannot hang, so it may block.
 */
export function requireVolumeDirectorySync(dir: string, name: string): void {
  let info: Stats;
  try {
    info = lstatSync(dir);
  } catch (error) {
    throw lstatFailed(dir, name, error);
  }
  checkVolumeDirectory(dir, name, info);
}

function lstatFailed(dir: string, name: string, error: unknown): PluginError {
  if (errnoCode(error) === "ENOENT") {
    return new PluginError("BACKEND_FAILED", `directory ${dir} of volume ${JSON.stringify(name)} is missing`, { volume: name, cause: error });
  }
  return backendError(`cannot check ${dir}`, error, name);
}

function checkVolumeDirectory(dir: string, name: string, info: Stats): void {
  if (info.isSymbolicLink() || !info.isDirectory()) {
    throw new PluginError(
      "BACKEND_FAILED",
      `${dir} is not a directory (symlinks are not followed); move it away or choose another volume name`,
      { volume: name },
    );
  }
}

/** chown/chmod through a descriptor opened without following symlinks. */
export async function applyOwnership(dir: string, ownership: Ownership, steps: FsSteps = POOLED): Promise<void> {
  if (ownership.uid === undefined && ownership.gid === undefined && ownership.mode === undefined) return;
  await steps.setOwnerAndMode(dir, ownership);
}

/**
 * Errors that say the storage is away (hung, disconnected), not that the data is bad.
 * ECONNABORTED is what a FUSE request in flight gets when its daemon is killed.
 */
const UNAVAILABLE = new Set(["ENOTCONN", "ECONNABORTED", "EIO", "ESTALE", "ETIMEDOUT", "EHOSTDOWN", "EHOSTUNREACH", "ENODEV", "ENXIO"]);

export function storageUnavailable(error: unknown): boolean {
  if (error instanceof PluginError && error.code === "TIMEOUT") return true;
  const code = errnoCode(error instanceof PluginError ? error.cause : error);
  return code !== undefined && UNAVAILABLE.has(code);
}

export function ignoreExists(error: unknown): void {
  if (errnoCode(error) !== "EEXIST") throw error;
}

export function backendError(message: string, cause: unknown, volume: string): PluginError {
  return new PluginError("BACKEND_FAILED", `${message}: ${messageOf(cause)}`, { cause, volume });
}

/** After mkdir said EEXIST: the volume's directory, looked at again while a name cache hides it. */
export function requireExistingVolumeDirectory(dir: string, name: string, patienceMs = 2000): Promise<void> {
  return lookAgainWhileMissing(
    () => requireVolumeDirectory(dir, name),
    (error) => error instanceof PluginError && errnoCode(error.cause) === "ENOENT",
    patienceMs,
  );
}
