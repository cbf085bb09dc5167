import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, statSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { resolveServeConfig, type ServeConfig } from "../../../src/config.ts";
import { createLogger } from "../../../src/logging.ts";
import { type RunningService, startService } from "../../../src/service.ts";
import { EngineClient } from "../../support/engine-client.ts";
import { makeTempDir, removeTempDir } from "../../support/tmp.ts";

let dir: string;
let config: ServeConfig;
const running: RunningService[] = [];
const log = createLogger({ level: "silent", format: "json" });

beforeEach(async () => {
  dir = await makeTempDir("dqp-sock-");
  config = resolveServeConfig(
    { path: `${dir}/volumes`, "state-dir": `${dir}/state`, socket: `${dir}/plugin.sock`, group: "nogroup" },
    {},
  );
});
afterEach(async () => {
  for (const service of running.splice(0)) await service.stop();
  await removeTempDir(dir);
});

async function start(overrides: Partial<ServeConfig> = {}): Promise<RunningService> {
  const service = await startService({ ...config, ...overrides }, log);
  running.push(service);
  return service;
}

describe("the plugin socket", () => {
  for (const hostStyle of ["empty", "moby"] as const) {
    test(`serves the whole protocol on one keep-alive connection (Host ${hostStyle})`, async () => {
      await start();
      const engine = new EngineClient(config.socketPath, hostStyle);
      try {
        expect((await engine.call("Plugin.Activate")).json).toEqual({ Implements: ["VolumeDriver"] });
        expect((await engine.call("VolumeDriver.Capabilities", {})).json).toEqual({ Capabilities: { Scope: "local" } });
        expect((await engine.call("VolumeDriver.Get", { Name: "v" })).json).toMatchObject({ Err: expect.any(String) });
        expect((await engine.call("VolumeDriver.Create", { Name: "v", Opts: {} })).status).toBe(200);
        const id = "f".repeat(64);
        const mount = await engine.call("VolumeDriver.Mount", { Name: "v", ID: id });
        expect(mount.json).toEqual({ Mountpoint: `${dir}/volumes/v` });
        // docker cp mounts the same ID again while the container runs.
        await engine.call("VolumeDriver.Mount", { Name: "v", ID: id });
        await engine.call("VolumeDriver.Unmount", { Name: "v", ID: id });
        expect((await engine.call("VolumeDriver.Remove", { Name: "v" })).json).toMatchObject({
          Err: expect.stringContaining("VOLUME_IN_USE"),
        });
        await engine.call("VolumeDriver.Unmount", { Name: "v", ID: id });
        expect((await engine.call("VolumeDriver.Remove", { Name: "v" })).json).toEqual({});
        expect((await engine.call("VolumeDriver.List", {})).json).toEqual({ Volumes: [] });
      } finally {
        engine.close();
      }
    });
  }

  test("an empty body means {}: Create refuses it for its missing Name, List and Capabilities answer", async () => {
    await start();
    const engine = new EngineClient(config.socketPath);
    try {
      const reply = await engine.call("VolumeDriver.Create");
      expect(reply.status).toBe(400);
      expect(reply.json).toMatchObject({ Err: expect.stringContaining("Name is required") });
      expect((await engine.call("VolumeDriver.List")).json).toEqual({ Volumes: [] });
      expect((await engine.call("VolumeDriver.Capabilities")).json).toEqual({ Capabilities: { Scope: "local" } });
    } finally {
      engine.close();
    }
  });

  test("invalid UTF-8 in a name becomes U+FFFD and stays one safe directory", async () => {
    const service = await start();
    const engine = new EngineClient(config.socketPath);
    try {
      const body = Buffer.concat([Buffer.from('{"Name":"bad'), Buffer.from([0xff, 0xfe]), Buffer.from('"}\n')]);
      expect((await engine.raw("VolumeDriver.Create", body)).status).toBe(200);
      const names = (await service.driver.list()).map((v) => v.name);
      expect(names).toEqual(["bad\ufffd\ufffd"]);
    } finally {
      engine.close();
    }
  });

  test("a chunked body over the limit is cut off with an Err", async () => {
    await start();
    const reply = await new Promise<string>((resolve) => {
      const socket = connect(config.socketPath);
      let text = "";
      socket.on("data", (chunk) => {
        text += chunk.toString();
        if (text.includes("\r\n\r\n") && text.includes("}")) {
          socket.destroy();
          resolve(text);
        }
      });
      socket.on("close", () => resolve(text));
      socket.on("error", () => resolve(text));
      socket.write("POST /VolumeDriver.Create HTTP/1.1\r\nHost:\r\nTransfer-Encoding: chunked\r\n\r\n");
      const chunk = "x".repeat(64 * 1024);
      for (let i = 0; i < 20; i++) socket.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
    });
    expect(reply).toContain("413");
    expect(reply).toContain("REQUEST_TOO_LARGE");
  });

  test("is created 0660 with the configured group and removed on stop", async () => {
    const service = await start();
    const info = statSync(config.socketPath);
    expect(info.isSocket()).toBe(true);
    expect(info.mode & 0o777).toBe(0o660);
    expect(info.uid).toBe(0);
    expect(info.gid).toBe(65534);
    await service.stop();
    expect(existsSync(config.socketPath)).toBe(false);
  });

  test("creates a missing socket directory", async () => {
    const socketPath = `${dir}/run/docker/plugins/quobyte.sock`;
    await start({ socketPath });
    expect(statSync(socketPath).isSocket()).toBe(true);
  });

  test("replaces a stale socket left by a crashed plugin", async () => {
    // A plugin killed by SIGKILL leaves its socket file behind with nobody listening.
    const crashed = Bun.spawn(
      [process.execPath, "-e", `Bun.serve({ unix: ${JSON.stringify(config.socketPath)}, fetch: () => new Response("") }); process.kill(process.pid, "SIGKILL");`],
      { stdout: "ignore", stderr: "ignore" },
    );
    await crashed.exited;
    expect(existsSync(config.socketPath)).toBe(true);
    await start();
    const engine = new EngineClient(config.socketPath);
    try {
      expect((await engine.call("Plugin.Activate")).status).toBe(200);
    } finally {
      engine.close();
    }
  });

  test("refuses to take over a socket another plugin is serving on", async () => {
    await start();
    await expect(start()).rejects.toThrow(/already serving/);
  });

  test("refuses to replace a file that is not a socket", async () => {
    writeFileSync(config.socketPath, "precious");
    await expect(start()).rejects.toThrow(/not a socket/);
    expect(await Bun.file(config.socketPath).text()).toBe("precious");
  });

  test("refuses an unknown socket group", async () => {
    await expect(start({ socketGroup: "no-such-group-xyz" })).rejects.toThrow(/does not exist/);
    expect(existsSync(config.socketPath)).toBe(false);
  });
});
