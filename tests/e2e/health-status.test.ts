// Health that tells the truth, through the compiled binary: a wrong API password, an API
// that goes away and comes back, a posix root that is not the mount it should be.

import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { DEFAULT_USER, type FakeQuobyte, startFakeQuobyte } from "../support/fake-quobyte.ts";
import { EngineClient } from "../support/engine-client.ts";
import { makeTempDir, removeTempDir } from "../support/tmp.ts";
import { type PluginProcess, runBinary, startPlugin, stopPlugin } from "./plugin-process.ts";

interface Dependency {
  ok: boolean;
  state: string;
  detail: string;
  latencyMs?: number;
  lastError?: { message: string; at: string };
}
interface HealthBody {
  status: string;
  dependencies: Record<string, Dependency>;
}

let dir: string;
let plugin: PluginProcess | undefined;
const fakes: FakeQuobyte[] = [];

beforeEach(async () => {
  dir = await makeTempDir("dqp-health-");
});
afterEach(async () => {
  if (plugin) await stopPlugin(plugin, "SIGKILL");
  plugin = undefined;
  for (const fake of fakes.splice(0)) await fake.stop();
  await removeTempDir(dir);
});

async function health(): Promise<{ code: number; body: HealthBody }> {
  const res = await fetch("http://p/health", { unix: `${dir}/p.sock` });
  return { code: res.status, body: (await res.json()) as HealthBody };
}

/** Polls /health (each poll may start a probe) until `done` holds. */
async function healthUntil(done: (body: HealthBody) => boolean, what: string): Promise<HealthBody> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const { body } = await health();
    if (done(body)) return body;
    if (Date.now() > deadline) throw new Error(`health never showed ${what}: ${JSON.stringify(body)}\n${plugin?.stderr()}`);
    await Bun.sleep(250);
  }
}

function logLines(): { level: string; msg: string }[] {
  return (plugin?.stderr() ?? "")
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as { level: string; msg: string });
}

describe("health and status per dependency", () => {
  test("wrong API password: serving goes on, ERROR once with the fix, health degraded, status exits 1; recovery is logged", async () => {
    const first = await startFakeQuobyte({ mountTree: `${dir}/mnt` });
    fakes.push(first);
    mkdirSync(`${dir}/mnt`, { recursive: true });
    writeFileSync(`${dir}/pw`, "not-the-password\n");
    plugin = await startPlugin(
      [
        "--api", first.url, "--tenant-id", "My Tenant", "--password-file", `${dir}/pw`, "--api-timeout", "2",
        "--path", `${dir}/mnt`, "--mount-check", "none", "--state-dir", `${dir}/state`, "--socket", `${dir}/p.sock`, "--log-format", "json",
      ],
      `${dir}/p.sock`,
    );
    const broken = await healthUntil((body) => body.dependencies.api?.state === "unauthenticated", "api unauthenticated");
    expect(broken.status).toBe("degraded");
    expect(broken.dependencies.mount).toMatchObject({ ok: true, state: "live" });
    expect(broken.dependencies.api?.detail).toMatch(/authentication failed for user "admin".*QUOBYTE_API_PASSWORD/);
    expect(broken.dependencies.api?.lastError?.at).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect((await health()).code).toBe(503);

    const status = await runBinary(["status", "--socket", `${dir}/p.sock`]);
    expect(status.code).toBe(1);
    expect(status.stdout).toMatch(/^degraded: backend quobyte/);
    expect(status.stdout).toMatch(/api +unauthenticated \(\d+ ms\): .*QUOBYTE_API_PASSWORD/);
    expect(status.stdout).toMatch(/mount +live/);

    // Still serving the engine, with an Err for what needs the API.
    const engine = new EngineClient(`${dir}/p.sock`);
    try {
      expect((await engine.call("Plugin.Activate")).json).toEqual({ Implements: ["VolumeDriver"] });
      expect((await engine.call("VolumeDriver.Create", { Name: "v1" })).json).toMatchObject({ Err: expect.stringContaining("authentication failed") });
    } finally {
      engine.close();
    }
    // Probes repeat (the cache is 5 s); the same failure is not logged again.
    await Bun.sleep(5500);
    await healthUntil((body) => body.dependencies.api?.state === "unauthenticated", "api still unauthenticated");
    const errors = () => logLines().filter((line) => line.level === "error" && line.msg.startsWith("api is"));
    expect(errors().map((line) => line.msg)).toEqual([expect.stringMatching(/^api is unauthenticated: .*fix QUOBYTE_API_USER \/ QUOBYTE_API_PASSWORD/)]);

    // The API side is fixed (the same URL now accepts this password): logged once as recovered.
    const port = first.port;
    await first.stop();
    fakes.splice(0);
    const fixed = await startFakeQuobyte({ port, mountTree: `${dir}/mnt`, users: [{ ...DEFAULT_USER, password: "not-the-password" }] });
    fakes.push(fixed);
    const recovered = await healthUntil((body) => body.dependencies.api?.state === "ok", "api ok");
    expect(recovered.status).toBe("ok");
    expect(recovered.dependencies.api?.lastError?.message).toMatch(/authentication failed/);
    expect(logLines().filter((line) => line.msg === "api is ok again")).toHaveLength(1);
    expect((await runBinary(["status", "--socket", `${dir}/p.sock`])).code).toBe(0);

    // The API goes away: unreachable, logged once more with what to check.
    await fixed.stop();
    fakes.splice(0);
    const gone = await healthUntil((body) => body.dependencies.api?.state === "unreachable", "api unreachable");
    expect(gone.dependencies.api?.detail).toMatch(/cannot reach http:\/\/127\.0\.0\.1.*check QUOBYTE_API_URL/);
    expect(errors().map((line) => line.msg)).toEqual([expect.stringMatching(/unauthenticated/), expect.stringMatching(/^api is unreachable: /)]);
    expect((await runBinary(["status", "--socket", `${dir}/p.sock`, "--json"])).code).toBe(1);
  }, 90_000);

  test("posix --mount-check mountpoint on a plain directory: mount-all fails with the fix, serve reports down", async () => {
    mkdirSync(`${dir}/root`);
    const flags = ["--backend", "posix", "--path", `${dir}/root`, "--mount-check", "mountpoint", "--state-dir", `${dir}/state`];
    const mountAll = await runBinary(["mount-all", ...flags]);
    expect(mountAll.code).toBe(1);
    expect(mountAll.stderr).toBe(
      `error: --mount-check mountpoint: nothing is mounted at ${dir}/root; mount the shared filesystem there first (fstab or a .mount unit), or pass --mount-check none if it is meant to be a local directory\n`,
    );
    expect(mountAll.stdout).toBe("");
    // Nothing was prepared on the wrong disk.
    expect(readdirSync(`${dir}/root`)).toEqual([]);
    expect((await runBinary(["mount-all", ...flags.slice(0, -4), "--mount-check", "none"])).code).toBe(0);

    plugin = await startPlugin([...flags, "--socket", `${dir}/p.sock`], `${dir}/p.sock`);
    const { code, body } = await health();
    expect(code).toBe(503);
    expect(body.status).toBe("down");
    expect(body.dependencies.mount).toMatchObject({ ok: false, state: "not-mounted" });
    expect(body.dependencies.api).toBeUndefined();
    const status = await runBinary(["status", "--socket", `${dir}/p.sock`]);
    expect(status.code).toBe(1);
    expect(status.stdout).toMatch(/^down: backend posix/);
    expect(status.stdout).toMatch(/mount +not-mounted \(\d+ ms\): nothing is mounted at/);
  });

  test("status exit 2 with how to start the plugin when nothing runs at the socket", async () => {
    const missing = await runBinary(["status", "--socket", `${dir}/none.sock`]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe(
      `error: the plugin is not running at ${dir}/none.sock (no such socket); start it with \`systemctl start docker-quobyte-plugin.socket docker-quobyte-plugin.service\` or \`docker-quobyte-plugin serve\`, or name its socket with --socket or --name\n`,
    );
    // The socket a SIGKILLed plugin leaves behind.
    plugin = await startPlugin(["--backend", "posix", "--path", `${dir}/v`, "--state-dir", `${dir}/state`, "--socket", `${dir}/p.sock`], `${dir}/p.sock`);
    await stopPlugin(plugin, "SIGKILL");
    plugin = undefined;
    expect(existsSync(`${dir}/p.sock`)).toBe(true);
    const refused = await runBinary(["status", "--socket", `${dir}/p.sock`]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/^error: nothing answers on .*\/p\.sock \(a socket left by a plugin that died\); start it with/);
  });
});
