import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { QuobyteBackend, type QuobyteBackendOptions } from "../../../src/backends/quobyte/quobyte-backend.ts";
import { createLogger, type LogSink } from "../../../src/logging.ts";
import { QuobyteApi } from "../../../src/quobyte/api.ts";
import { RpcClient } from "../../../src/quobyte/rpc-client.ts";
import { MountMonitor } from "../../../src/system/mount-health.ts";
import { DEFAULT_USER, type FakeQuobyte, type FakeQuobyteOptions, startFakeQuobyte } from "../../support/fake-quobyte.ts";
import { makeTempDir, removeTempDir } from "../../support/tmp.ts";

export interface QuobyteHarness {
  dir: string;
  /** The directory the fake materialises volumes in: our "Quobyte mount". */
  mount: string;
  stateDir: string;
  fake: FakeQuobyte;
  logs: string[];
  /** A new, uninitialised backend over the same fake and state (a plugin restart). */
  newBackend(overrides?: Partial<QuobyteBackendOptions>): QuobyteBackend;
  cleanup(): Promise<void>;
}

/** The real backend, API client and RPC client against the fake API on loopback. */
export async function makeQuobyteHarness(fakeOptions: FakeQuobyteOptions = {}): Promise<QuobyteHarness> {
  const dir = await makeTempDir("dqp-quobyte-");
  const mount = join(dir, "mnt");
  await mkdir(mount);
  const fake = await startFakeQuobyte({ mountTree: mount, ...fakeOptions });
  const logs: string[] = [];
  const sink: LogSink = { write: (line) => logs.push(line) };
  const log = createLogger({ level: "debug", format: "json", sink });
  return {
    dir,
    mount,
    stateDir: join(dir, "state"),
    fake,
    logs,
    newBackend(overrides = {}) {
      const rpc = new RpcClient({ url: fake.url, user: DEFAULT_USER.name, password: DEFAULT_USER.password, timeoutMs: 2000 });
      return new QuobyteBackend({
        api: new QuobyteApi(rpc),
        mountPath: mount,
        metadataDir: join(dir, "state", "quobyte-volumes"),
        tenant: "My Tenant",
        configurationName: "BASE",
        defaultUser: "root",
        defaultGroup: "root",
        monitor: new MountMonitor(mount, "none", 2000),
        createWaitMs: 3000,
        fsTimeoutMs: 2000,
        listAll: false,
        log,
        ...overrides,
      });
    },
    async cleanup() {
      await fake.stop();
      await removeTempDir(dir);
    },
  };
}
