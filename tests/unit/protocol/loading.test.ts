import { afterEach, beforeEach, expect, test } from "bun:test";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { PosixBackend } from "../../../src/backends/posix/posix-backend.ts";
import { resolveServeConfig, type ServeConfig } from "../../../src/config.ts";
import { Driver } from "../../../src/core/driver.ts";
import { MountRefs } from "../../../src/core/mount-refs.ts";
import { createLogger } from "../../../src/logging.ts";
import { createApp } from "../../../src/protocol/app.ts";
import { startService } from "../../../src/service.ts";
import { EngineClient } from "../../support/engine-client.ts";
import { makeTempDir, removeTempDir } from "../../support/tmp.ts";
import { engineRequest } from "./harness.ts";

// The socket opens before the backend has loaded its index: Activate answers at once,
// every other call waits for the load, and a failed load is an Err, never an answer
// from a half-loaded index.

let dir: string;
const log = createLogger({ level: "silent", format: "json" });
beforeEach(async () => {
  dir = await makeTempDir("dqp-loading-");
});
afterEach(async () => {
  await removeTempDir(dir);
});

async function appWhileLoading() {
  const backend = new PosixBackend({ root: `${dir}/volumes` });
  const refs = MountRefs.open({ stateDir: `${dir}/state`, bootId: "test-boot" });
  let finish!: () => void;
  let fail!: (error: Error) => void;
  const loading = new Promise<void>((resolve, reject) => {
    finish = resolve;
    fail = reject;
  }).then(() => backend.init());
  let loaded = false;
  void loading.then(() => {
    loaded = true;
  }, () => {});
  const app = createApp(new Driver(backend, refs, { timeoutMs: 5000 }), log, undefined, () => (loaded ? undefined : loading));
  const cleanup = async () => {
    refs.close();
    await backend.close();
  };
  return { app, finish, fail, cleanup };
}

const call = async (app: ReturnType<typeof createApp>, method: string, body?: unknown): Promise<Response> =>
  await app.request(`/${method}`, engineRequest(body));

test("Activate answers while the index loads; a Create sent meanwhile waits for it, then runs", async () => {
  const { app, finish, cleanup } = await appWhileLoading();
  try {
    const activate = await call(app, "Plugin.Activate");
    expect(await activate.json()).toEqual({ Implements: ["VolumeDriver"] });
    let answered = false;
    const create = call(app, "VolumeDriver.Create", { Name: "v", Opts: {} }).then((reply) => {
      answered = true;
      return reply;
    });
    await Bun.sleep(50);
    expect(answered).toBe(false);
    expect(existsSync(`${dir}/volumes/v`)).toBe(false);
    finish();
    expect(await (await create).json()).toEqual({});
    expect(existsSync(`${dir}/volumes/v`)).toBe(true);
  } finally {
    await cleanup();
  }
});

test("a load that fails answers the waiting calls with its Err", async () => {
  const { app, fail, cleanup } = await appWhileLoading();
  try {
    const get = call(app, "VolumeDriver.Get", { Name: "v" });
    fail(new Error("volume root is gone"));
    const reply = (await (await get).json()) as { Err?: string };
    expect(reply.Err).toContain("volume root is gone");
  } finally {
    await cleanup();
  }
});

test("serve refuses to start when the backend cannot load, and leaves no socket behind", async () => {
  // A volume root that is a file cannot be used.
  mkdirSync(`${dir}/x`);
  writeFileSync(`${dir}/x/volumes`, "not a directory");
  const config: ServeConfig = resolveServeConfig(
    { path: `${dir}/x/volumes`, "state-dir": `${dir}/state`, socket: `${dir}/plugin.sock`, group: "nogroup" },
    {},
  );
  await expect(startService(config, log)).rejects.toThrow(/volume root/);
  expect(existsSync(config.socketPath)).toBe(false);
});

test("a served plugin answers List with what was loaded before the first call", async () => {
  mkdirSync(`${dir}/volumes/.docker-quobyte-plugin/volumes`, { recursive: true });
  mkdirSync(`${dir}/volumes/kept`);
  writeFileSync(
    `${dir}/volumes/.docker-quobyte-plugin/volumes/kept`,
    `${JSON.stringify({ version: 1, createdAt: new Date().toISOString(), options: {}, state: "ready" })}\n`,
  );
  const config = resolveServeConfig(
    { path: `${dir}/volumes`, "state-dir": `${dir}/state`, socket: `${dir}/plugin.sock`, group: "nogroup" },
    {},
  );
  const service = await startService(config, log);
  const engine = new EngineClient(config.socketPath);
  try {
    expect((await engine.call("VolumeDriver.List", {})).json).toEqual({ Volumes: [{ Name: "kept", Mountpoint: `${dir}/volumes/kept` }] });
  } finally {
    engine.close();
    await service.stop();
  }
});
