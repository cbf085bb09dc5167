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
  /** The API client as the plugin builds it, for another URL (a relay in front of the fake). */
  apiAt(url: string): QuobyteApi;
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
  const apiAt = (url: string) =>
    new QuobyteApi(new RpcClient({ url, user: DEFAULT_USER.name, password: DEFAULT_USER.password, timeoutMs: 2000 }));
  return {
    dir,
    mount,
    stateDir: join(dir, "state"),
    fake,
    logs,
    apiAt,
    newBackend(overrides = {}) {
      return new QuobyteBackend({
        api: apiAt(fake.url),
        mountPath: mount,
        stateDir: join(dir, "state"),
        tenant: "My Tenant",
        configurationName: "BASE",
        defaultUser: "root",
        defaultGroup: "root",
        monitor: new MountMonitor(mount, "none", 2000),
        createWaitMs: 3000,
        fsTimeoutMs: 2000,
        listAll: false,
        cacheTtlMs: 10_000,
        apiWaitMs: 1000,
        claims: false,
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
