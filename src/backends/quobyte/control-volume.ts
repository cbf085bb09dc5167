import { lstat } from "node:fs/promises";
import { join } from "node:path";
import { withDeadline } from "../../core/deadline.ts";
import type { Logger } from "../../logging.ts";
import type { QuobyteApi, Tenant } from "../../quobyte/api.ts";
import { provisionVolume, waitUntilVisible } from "./provision.ts";

/**
 * A Quobyte volume of the plugin's own, in the default tenant: the one directory every
 * host's client shows and every host may write, so the hosts' mount claims live there
 * (as for posix beside the volumes) without a call on the shared API per Mount. Docker
 * cannot name it (checkName refuses the name) and List never shows it.
 */
export const CONTROL_VOLUME = "docker-quobyte-plugin.control";

export interface ControlVolumeSetup {
  api: QuobyteApi;
  mountPath: string;
  home: () => Promise<Tenant>;
  configurationName: string;
  createWaitMs: number;
  fsTimeoutMs: number;
  log: Logger;
}

/**
 * The control volume's path, made through the API when no host made it yet; undefined
 * (claims off, with a warning) when it is missing and cannot be made now. Existing, it
 * costs no API call: a cluster-wide restart does not call the API for it.
 */
export async function controlVolumePath(setup: ControlVolumeSetup): Promise<string | undefined> {
  const path = join(setup.mountPath, CONTROL_VOLUME);
  if (await isDirectory(path, setup.fsTimeoutMs)) return path;
  try {
    const home = await setup.home();
    await provisionVolume({
      api: setup.api,
      log: setup.log,
      name: CONTROL_VOLUME,
      tenantId: home.id,
      rootUserId: "root",
      rootGroupId: "root",
      configurationName: setup.configurationName,
    });
    await waitUntilVisible(path, CONTROL_VOLUME, setup.createWaitMs, setup.fsTimeoutMs);
    return path;
  } catch (error) {
    setup.log.warn(
      `mount claims are off: the control volume ${CONTROL_VOLUME} is missing and cannot be made now (${String(error)}); a Remove here cannot see other hosts' mounts until the plugin restarts with the API reachable`,
    );
    return undefined;
  }
}

async function isDirectory(path: string, timeoutMs: number): Promise<boolean> {
  try {
    return (await withDeadline(lstat(path), timeoutMs, `checking ${path}`)).isDirectory();
  } catch {
    return false;
  }
}
