// The posix root on a real FUSE filesystem (bindfs) that is frozen with SIGSTOP or killed:
// Create and Mount fail fast with a clear Err, while Activate, Capabilities, Get and List
// keep answering from state. Answer times are printed for the README's reliability section.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { mountAt } from "../../src/system/mountinfo.ts";
import { EngineClient } from "../support/engine-client.ts";
import { makeTempDir, removeTempDir } from "../support/tmp.ts";
import { type PluginProcess, runBinary, startPlugin, stopPlugin } from "./plugin-process.ts";
import { pidsWithCmdline, runArgv } from "./support/engine.ts";

let dir: string;
let source: string;
let root: string;
let plugin: PluginProcess;
let engine: EngineClient;

function bindfsPid(): number {
  const [pid] = pidsWithCmdline(source);
  if (pid === undefined) throw new Error("bindfs is not running");
  return pid;
}

async function timed<T>(work: Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await work;
  return { value, ms: Math.round(performance.now() - started) };
}

beforeAll(async () => {
  dir = await makeTempDir("dqp-hung-");
  source = join(dir, "backing");
  root = join(dir, "root");
  await mkdir(source);
  await mkdir(root);
  expect((await runArgv(["bindfs", source, root])).code).toBe(0);
  plugin = await startPlugin(
    ["--backend", "posix", "--path", root, "--state-dir", join(dir, "state"), "--socket", join(dir, "p.sock"), "--mount-check", "mountpoint", "--timeout", "20"],
    join(dir, "p.sock"),
  );
  engine = new EngineClient(join(dir, "p.sock"));
  expect((await engine.call("VolumeDriver.Create", { Name: "before" })).json).toEqual({});
}, 60_000);

afterAll(async () => {
  engine?.close();
  for (const pid of pidsWithCmdline(source)) {
    process.kill(pid, "SIGCONT");
    process.kill(pid, "SIGKILL");
  }
  if (plugin) await stopPlugin(plugin, "SIGKILL");
  while (await mountAt(root)) await runArgv(["umount", "-l", root]);
  await removeTempDir(dir);
});

/** Mounts bindfs again after a kill left the mount point dead (ENOTCONN). */
async function remountBindfs(): Promise<void> {
  while (await mountAt(root)) await runArgv(["umount", "-l", root]);
  expect((await runArgv(["bindfs", source, root])).code).toBe(0);
}

/** Waits until Create succeeds again: the plugin sees the storage back. */
async function waitUntilCreateWorks(name: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  let reply = await engine.call("VolumeDriver.Create", { Name: name });
  while ("Err" in (reply.json as object) && Date.now() < deadline) {
    await Bun.sleep(100);
    reply = await engine.call("VolumeDriver.Create", { Name: name });
  }
  expect(reply.json).toEqual({});
}

describe("a verdict reached before the storage failed admits no request", () => {
  let serial = 0;
  for (const signal of ["SIGSTOP", "SIGKILL"] as const) {
    for (const method of ["Mount", "Create"] as const) {
      test(`${signal} on the FUSE root right after a successful Mount: the next ${method} gets an Err`, async () => {
        // A successful Mount leaves a fresh "live" verdict behind.
        const id = `${++serial}`.padStart(64, "a");
        expect((await engine.call("VolumeDriver.Mount", { Name: "before", ID: id })).json).toEqual({ Mountpoint: join(root, "before") });
        expect((await engine.call("VolumeDriver.Unmount", { Name: "before", ID: id })).json).toEqual({});
        const pid = bindfsPid();
        process.kill(pid, signal);
        try {
          const body = method === "Mount" ? { Name: "before", ID: id } : { Name: `late-${serial}` };
          const reply = await timed(engine.call(`VolumeDriver.${method}`, body));
          expect(reply.value.json).toMatchObject({ Err: expect.stringMatching(signal === "SIGSTOP" ? /did not answer/ : /not usable|ENOTCONN/) });
          console.log(`${signal === "SIGSTOP" ? "hung" : "dead"} root: ${method} got its Err in ${reply.ms} ms`);
        } finally {
          if (signal === "SIGSTOP") process.kill(pid, "SIGCONT");
          else await remountBindfs();
        }
        await waitUntilCreateWorks(`back-${serial}`);
        expect((await engine.call("VolumeDriver.Get", { Name: "before" })).json).toMatchObject({ Volume: { Name: "before" } });
      }, 60_000);
    }
  }
});

describe("a hung or dead storage mount never blocks the engine", () => {
  test("frozen (SIGSTOP): Create and Mount fail fast; the rest answers from state", async () => {
    const pid = bindfsPid();
    process.kill(pid, "SIGSTOP");
    try {
      const create = await timed(engine.call("VolumeDriver.Create", { Name: "during" }));
      expect(create.value.json).toMatchObject({ Err: expect.stringMatching(/did not (answer|finish) within/) });
      expect(create.ms).toBeLessThan(10_000);

      const mount = await timed(new EngineClient(join(dir, "p.sock")).call("VolumeDriver.Mount", { Name: "before", ID: "e".repeat(64) }));
      expect(mount.value.json).toMatchObject({ Err: expect.any(String) });
      expect(mount.ms).toBeLessThan(10_000);
      // The first calls wait for one probe's deadline; while it stays stuck, later ones fail at once.
      const again = await timed(engine.call("VolumeDriver.Mount", { Name: "before", ID: "d".repeat(64) }));
      expect(again.value.json).toMatchObject({ Err: expect.stringContaining("did not answer") });
      expect(again.ms).toBeLessThan(1500);

      const probe = new EngineClient(join(dir, "p.sock"));
      const answers = {
        activate: await timed(probe.call("Plugin.Activate")),
        capabilities: await timed(probe.call("VolumeDriver.Capabilities", {})),
        get: await timed(probe.call("VolumeDriver.Get", { Name: "before" })),
        list: await timed(probe.call("VolumeDriver.List", {})),
      };
      probe.close();
      expect(answers.activate.value.json).toEqual({ Implements: ["VolumeDriver"] });
      expect(answers.capabilities.value.json).toEqual({ Capabilities: { Scope: "local" } });
      expect(answers.get.value.json).toMatchObject({ Volume: { Name: "before" } });
      expect(answers.list.value.json).toMatchObject({ Volumes: expect.arrayContaining([{ Name: "before", Mountpoint: join(root, "before") }]) });
      for (const [what, answer] of Object.entries(answers)) {
        expect(answer.ms).toBeLessThan(1500);
        console.log(`hung mount: ${what} answered in ${answer.ms} ms`);
      }
      console.log(`hung mount: Create failed in ${create.ms} ms, Mount in ${mount.ms} ms, the next Mount in ${again.ms} ms`);

      // Health says so, without waiting on the frozen mount; status exits 1.
      const health = await timed(fetch("http://p/health", { unix: join(dir, "p.sock") }));
      expect(health.value.status).toBe(503);
      expect(await health.value.json()).toMatchObject({ status: "down", dependencies: { mount: { ok: false, state: "hung" } } });
      expect(health.ms).toBeLessThan(1500);
      const status = await runBinary(["status", "--socket", join(dir, "p.sock")]);
      expect(status.code).toBe(1);
      expect(status.stdout).toMatch(/^down: backend posix[^]*\nmount +hung \(\d+ ms\): .* did not answer within/);
    } finally {
      process.kill(pid, "SIGCONT");
    }
    // Once the storage answers again, so does the plugin.
    await waitUntilCreateWorks("after");
  }, 60_000);

  test("dead (the FUSE process killed: ENOTCONN): Create and Mount fail at once with a clear Err", async () => {
    process.kill(bindfsPid(), "SIGKILL");
    await Bun.sleep(100);
    const create = await timed(engine.call("VolumeDriver.Create", { Name: "ondead" }));
    expect(create.value.json).toMatchObject({ Err: expect.stringMatching(/not usable|ENOTCONN/) });
    expect(create.ms).toBeLessThan(2000);
    const mount = await timed(engine.call("VolumeDriver.Mount", { Name: "before", ID: "f".repeat(64) }));
    expect(mount.value.json).toMatchObject({ Err: expect.any(String) });
    expect((await engine.call("VolumeDriver.Get", { Name: "before" })).json).toMatchObject({ Volume: { Name: "before" } });
    const health = await fetch("http://p/health", { unix: join(dir, "p.sock") });
    const healthBody = await health.text();
    expect(health.status, healthBody).toBe(503);
    console.log(`dead mount: Create failed in ${create.ms} ms, Mount in ${mount.ms} ms`);
  }, 30_000);
});
