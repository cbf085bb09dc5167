import { readFile } from "node:fs/promises";
import type { ServeConfig } from "../config.ts";
import type { Backend } from "../core/types.ts";
import type { Logger } from "../logging.ts";
import { QuobyteApi } from "../quobyte/api.ts";
import { RpcClient } from "../quobyte/rpc-client.ts";
import { MountMonitor } from "../system/mount-health.ts";
import { PosixBackend } from "./posix/posix-backend.ts";
import { QuobyteBackend } from "./quobyte/quobyte-backend.ts";

/** Deadline of one filesystem probe of the storage mount. */
export const FS_PROBE_TIMEOUT_MS = 5000;

/** How long Get and List wait for the Quobyte API before the cache answers. */
const API_WAIT_MS = 1000;

/** The mount monitor a configuration asks for. */
export function createMountMonitor(config: ServeConfig): MountMonitor {
  return new MountMonitor(config.path, config.mountCheck, Math.min(FS_PROBE_TIMEOUT_MS, config.timeoutMs));
}

/** The backend a configuration names. */
export async function createBackend(config: ServeConfig, log: Logger): Promise<Backend> {
  switch (config.backend) {
    case "posix":
      return new PosixBackend({
        root: config.path,
        scope: config.scope,
        monitor: createMountMonitor(config),
        warn: (message) => log.withTag("posix").warn(message),
      });
    case "quobyte": {
      const q = config.quobyte;
      if (!q) throw new Error("quobyte settings missing");
      const ca = q.apiCaFile === undefined ? undefined : await readFile(q.apiCaFile, "utf8");
      const rpc = new RpcClient({ url: q.apiUrl, user: q.user, password: q.password, timeoutMs: q.apiTimeoutMs, ca });
      return new QuobyteBackend({
        api: new QuobyteApi(rpc),
        mountPath: config.path,
        stateDir: config.stateDir,
        tenant: q.tenant,
        configurationName: q.configurationName,
        defaultUser: "root",
        defaultGroup: "root",
        monitor: createMountMonitor(config),
        createWaitMs: q.createWaitMs,
        fsTimeoutMs: Math.min(FS_PROBE_TIMEOUT_MS, config.timeoutMs),
        listAll: q.listAll,
        cacheTtlMs: q.cacheTtlMs,
        apiWaitMs: Math.min(API_WAIT_MS, q.apiTimeoutMs),
        claims: true,
        log: log.withTag("quobyte"),
      });
    }
  }
}
