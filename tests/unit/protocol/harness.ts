import { PosixBackend } from "../../../src/backends/posix/posix-backend.ts";
import { Driver } from "../../../src/core/driver.ts";
import { MountRefs } from "../../../src/core/mount-refs.ts";
import { createLogger, type LogSink } from "../../../src/logging.ts";
import { createApp } from "../../../src/protocol/app.ts";
import { makeTempDir, removeTempDir } from "../../support/tmp.ts";

export interface AppHarness {
  app: ReturnType<typeof createApp>;
  driver: Driver;
  root: string;
  logs: string[];
  cleanup(): Promise<void>;
}

/** The real router over the real driver and posix backend, in a temp dir. */
export async function makeAppHarness(): Promise<AppHarness> {
  const dir = await makeTempDir("dqp-app-");
  const root = `${dir}/volumes`;
  const backend = new PosixBackend({ root });
  await backend.init();
  const refs = MountRefs.open({ stateDir: `${dir}/state`, bootId: "test-boot" });
  const driver = new Driver(backend, refs, { timeoutMs: 5000 });
  const logs: string[] = [];
  const sink: LogSink = { write: (line) => logs.push(line) };
  const app = createApp(driver, createLogger({ level: "debug", format: "json", sink }));
  return {
    app,
    driver,
    root,
    logs,
    async cleanup() {
      refs.close();
      await backend.close();
      await removeTempDir(dir);
    },
  };
}

/** A request as dockerd sends it: POST, no Content-Type, JSON with a trailing newline. */
export function engineRequest(body?: unknown): RequestInit {
  return {
    method: "POST",
    headers: { Accept: "application/vnd.docker.plugins.v1.2+json" },
    body: body === undefined ? "" : `${JSON.stringify(body)}\n`,
  };
}
