import { lstat } from "node:fs/promises";
import { withDeadline } from "../../core/deadline.ts";
import { errnoCode, messageOf, PluginError } from "../../core/errors.ts";
import type { Logger } from "../../logging.ts";
import { isExists, type NewVolume, type QuobyteApi } from "../../quobyte/api.ts";
import { QuobyteRpcError } from "../../quobyte/rpc-error.ts";

/** API failures become BACKEND_FAILED (or TIMEOUT) with the API's own words. */
export function apiError(error: unknown, volume?: string): PluginError {
  if (error instanceof PluginError) return error;
  if (error instanceof QuobyteRpcError) {
    return new PluginError(error.failure === "timeout" ? "TIMEOUT" : "BACKEND_FAILED", error.message, { volume, cause: error });
  }
  return new PluginError("BACKEND_FAILED", messageOf(error), { volume, cause: error });
}

export interface Provision extends NewVolume {
  api: QuobyteApi;
  log: Logger;
  sizeBytes?: number;
}

/**
 * Makes the API volume and its quota; returns its UUID and whether this call made it.
 * Idempotent: a volume of that name in the tenant (another host's, or an interrupted
 * Create's) is adopted. A volume is never left without the quota asked for, but only our
 * own is deleted to undo.
 */
export async function provisionVolume(request: Provision): Promise<{ uuid: string; created: boolean }> {
  const { api, log, name } = request;
  let uuid: string;
  let createdHere = true;
  try {
    uuid = await api.createVolume(request);
  } catch (error) {
    if (!isExists(error)) throw apiError(error, name);
    const existing = await api.resolveVolume(name, request.tenantId).catch((e: unknown) => {
      throw apiError(e, name);
    });
    if (!existing) throw apiError(error, name);
    uuid = existing;
    createdHere = false;
  }
  if (request.sizeBytes !== undefined) {
    try {
      await api.setVolumeQuota(uuid, request.sizeBytes);
    } catch (error) {
      if (createdHere) {
        await api.deleteVolume(uuid).catch((undo: unknown) =>
          log.error(`could not delete volume ${name} (${uuid}) after its quota failed: ${messageOf(undo)}`),
        );
      }
      throw apiError(error, name);
    }
  }
  return { uuid, created: createdHere };
}

/** A new volume shows up in the client's mount with a delay: poll `path` with backoff. */
export async function waitUntilVisible(path: string, name: string, waitMs: number, fsTimeoutMs: number): Promise<void> {
  const deadline = Date.now() + waitMs;
  let pause = 25;
  for (;;) {
    try {
      const info = await withDeadline(lstat(path), fsTimeoutMs, `checking ${path}`, name);
      if (info.isDirectory()) return;
    } catch (error) {
      if (errnoCode(error) !== "ENOENT") {
        if (error instanceof PluginError) throw error;
        throw new PluginError("BACKEND_FAILED", `cannot check ${path}: ${messageOf(error)}`, { volume: name, cause: error });
      }
    }
    if (Date.now() + pause > deadline) {
      throw new PluginError(
        "BACKEND_FAILED",
        `volume ${JSON.stringify(name)} was created but did not appear in the mount (${path}) within ${waitMs} ms; is the mount of the right registry?`,
        { volume: name },
      );
    }
    await Bun.sleep(pause);
    pause = Math.min(pause * 2, 1000);
  }
}
