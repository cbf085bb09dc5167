// Two hosts, one Quobyte: the quobyte backend against the fake management API, each host a
// plugin process (the compiled binary) in its own UTS + mount namespace with its own state
// dir and socket, and its own road to the API (a loopback relay the test can cut). One
// mount tree stands in for the Quobyte namespace both hosts' clients show; the hosts'
// mount claims live in the plugin's control volume there. Measured times are printed.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type ApiRelay, startApiRelay } from "../support/api-relay.ts";
import { DEFAULT_USER, type FakeQuobyte, startFakeQuobyte } from "../support/fake-quobyte.ts";
import { type Host, type Hosts, startHosts } from "../support/multi-host.ts";
import { err, listed, ok, removeUntilAllowed, secondsUntil } from "../support/multi-host-calls.ts";
import { makeTempDir, removeTempDir } from "../support/tmp.ts";

const TTL_S = 1;
const LEASE_S = 4;
/** The plugin refreshes its heartbeat every lease/4. */
const PERIOD_S = LEASE_S / 4;

let workDir: string;
let tree: string;
let fake: FakeQuobyte;
const relays = new Map<string, ApiRelay>();
let hosts: Hosts;
let a: Host;
let b: Host;

beforeAll(async () => {
  workDir = await makeTempDir("dqp-mhq-");
  tree = join(workDir, "mnt");
  await mkdir(tree);
  fake = await startFakeQuobyte({ mountTree: tree });
  const passwordFile = join(workDir, "api-password");
  await writeFile(passwordFile, DEFAULT_USER.password, { mode: 0o600 });
  for (const name of ["qhost-a", "qhost-b"]) relays.set(name, await startApiRelay(fake));
  hosts = await startHosts({
    names: ["qhost-a", "qhost-b"],
    workDir,
    pluginArgs: (host) => [
      "--backend", "quobyte", "--api", relays.get(host.name)?.url ?? "", "--tenant-id", "My Tenant",
      "--password-file", passwordFile, "--path", tree, "--mount-check", "none",
      "--cache-ttl", String(TTL_S), "--lease-timeout", String(LEASE_S), "--log-level", "debug",
    ],
  });
  a = hosts.host("qhost-a");
  b = hosts.host("qhost-b");
}, 120_000);

afterAll(async () => {
  await hosts?.stop();
  for (const relay of relays.values()) await relay.close();
  await fake?.stop();
  await removeTempDir(workDir);
}, 120_000);

const ID = (n: number) => n.toString(16).padStart(64, "0");

describe("quobyte, two hosts on one API", () => {
  test("A SIGKILLed while holding a mount: Remove on B refused at once, allowed once A's claim expired", async () => {
    await ok(a, "VolumeDriver.Create", { Name: "orphan", Opts: {} });
    await ok(a, "VolumeDriver.Mount", { Name: "orphan", ID: ID(5) });
    await a.kill();
    const times = await removeUntilAllowed(b, "orphan", "qhost-a", performance.now(), 3 * LEASE_S);
    console.log(
      `[multi-host-quobyte] --lease-timeout ${LEASE_S} s: Remove on B refused ${times.firstRefused.toFixed(2)} s after qhost-a was SIGKILLed ` +
        `(last refusal at ${times.lastRefused.toFixed(2)} s), allowed ${times.allowed.toFixed(2)} s after`,
    );
    expect(times.allowed).toBeGreaterThanOrEqual(LEASE_S - PERIOD_S);
    expect(times.allowed).toBeLessThanOrEqual(LEASE_S + 2 * PERIOD_S + 1);
    expect(fake.volumes().some((v) => v.name === "orphan")).toBe(false);
    // A comes back and re-claims what it recorded; the engine's Unmount still succeeds.
    await a.start();
    await ok(a, "VolumeDriver.Unmount", { Name: "orphan", ID: ID(5) });
  }, 60_000);

  test("A SIGKILLed and restarted at once: its claim holds past the lease timeout until A unmounts", async () => {
    await ok(a, "VolumeDriver.Create", { Name: "phoenix", Opts: {} });
    await ok(a, "VolumeDriver.Mount", { Name: "phoenix", ID: ID(6) });
    await a.kill();
    await a.start();
    await Bun.sleep((LEASE_S + 2 * PERIOD_S) * 1000);
    expect(await err(b, "VolumeDriver.Remove", { Name: "phoenix" })).toContain("qhost-a");
    await ok(a, "VolumeDriver.Unmount", { Name: "phoenix", ID: ID(6) });
    await ok(b, "VolumeDriver.Remove", { Name: "phoenix" });
  }, 60_000);

  test("each host has its own hostname and publishes its heartbeat in the control volume", async () => {
    expect((await a.ns.run(["hostname"])).trim()).toBe("qhost-a");
    expect((await b.ns.run(["hostname"])).trim()).toBe("qhost-b");
    expect((await readdir(join(tree, "docker-quobyte-plugin.control", "claims", "hosts"))).sort()).toEqual(["qhost-a", "qhost-b"]);
    // One control volume for the cluster, and Docker never sees it.
    expect(fake.volumes().filter((v) => v.name === "docker-quobyte-plugin.control")).toHaveLength(1);
    expect(await listed(a)).not.toContain("docker-quobyte-plugin.control");
  });

  test("created on A: Get, List and Mount on B with the same CreatedAt and options; data written through A is read through B", async () => {
    await ok(a, "VolumeDriver.Create", { Name: "shared", Opts: { size: "1G" } });
    const onA = (await ok(a, "VolumeDriver.Get", { Name: "shared" })).Volume as Record<string, unknown>;
    const onB = (await ok(b, "VolumeDriver.Get", { Name: "shared" })).Volume as Record<string, unknown>;
    expect(onB.CreatedAt).toBe(onA.CreatedAt);
    expect(onB.CreatedAt).toBe(new Date(fake.volumes().find((v) => v.name === "shared")?.createdMs ?? 0).toISOString());
    expect(onB.Status).toMatchObject({ managed: true, options: { size: "1G" }, quotaBytes: 2 ** 30 });
    expect(await listed(b)).toContain("shared");
    const pathA = (await ok(a, "VolumeDriver.Mount", { Name: "shared", ID: ID(1) })).Mountpoint as string;
    const pathB = (await ok(b, "VolumeDriver.Mount", { Name: "shared", ID: ID(2) })).Mountpoint as string;
    await writeFile(join(a.viewOf(pathA), "from-a.txt"), "written on qhost-a\n");
    expect(await readFile(join(b.viewOf(pathB), "from-a.txt"), "utf8")).toBe("written on qhost-a\n");
    await ok(a, "VolumeDriver.Unmount", { Name: "shared", ID: ID(1) });
    await ok(b, "VolumeDriver.Unmount", { Name: "shared", ID: ID(2) });
  });

  test("20 names created on A and B at the same moment: one volume each", async () => {
    const names = Array.from({ length: 20 }, (_, i) => `race-${i}`);
    await Promise.all(names.flatMap((Name) => [ok(a, "VolumeDriver.Create", { Name, Opts: {} }), ok(b, "VolumeDriver.Create", { Name, Opts: {} })]));
    const inApi = fake.volumes().filter((v) => v.name.startsWith("race-"));
    expect(inApi.map((v) => v.name).sort()).toEqual([...names].sort());
    for (const host of [a, b]) {
      await secondsUntil(async () => (await listed(host)).filter((n) => n.startsWith("race-")).length === 20, 3 * TTL_S + 2);
      for (const Name of names) {
        const status = ((await ok(host, "VolumeDriver.Get", { Name })).Volume as { Status: { uuid: string } }).Status;
        expect(status.uuid).toBe(inApi.find((v) => v.name === Name)?.uuid ?? "");
      }
    }
  });

  test("Remove on B is refused while A has it mounted and the data survives; after Unmount on A it is gone on both within 3 s", async () => {
    await ok(a, "VolumeDriver.Create", { Name: "doomed", Opts: {} });
    const mounted = (await ok(a, "VolumeDriver.Mount", { Name: "doomed", ID: ID(4) })).Mountpoint as string;
    await writeFile(join(a.viewOf(mounted), "data.txt"), "precious\n");
    expect(await err(b, "VolumeDriver.Remove", { Name: "doomed" })).toMatch(/mounted on host\(s\) qhost-a \(since \d{4}-\d\d-\d\dT[^)]+\)/);
    expect(fake.volumes().some((v) => v.name === "doomed")).toBe(true);
    expect(await readFile(join(b.viewOf(join(tree, "doomed")), "data.txt"), "utf8")).toBe("precious\n");
    await ok(a, "VolumeDriver.Unmount", { Name: "doomed", ID: ID(4) });
    await ok(b, "VolumeDriver.Remove", { Name: "doomed" });
    const seconds = await secondsUntil(async () => {
      const gone = async (host: Host) => (await err(host, "VolumeDriver.Get", { Name: "doomed" }).catch(() => "")).includes("VOLUME_NOT_FOUND");
      return (await gone(a)) && (await gone(b)) && !(await listed(a)).includes("doomed");
    }, 3);
    console.log(`[multi-host-quobyte] Remove on B: gone on both after ${seconds.toFixed(2)} s (cache TTL ${TTL_S} s)`);
    expect(fake.volumes().some((v) => v.name === "doomed")).toBe(false);
  });

  test("the API down for B while A keeps working, then back", async () => {
    await ok(a, "VolumeDriver.Create", { Name: "before", Opts: {} });
    await ok(b, "VolumeDriver.Get", { Name: "before" });
    const relay = relays.get("qhost-b");
    if (!relay) throw new Error("no relay for qhost-b");
    await relay.down();
    try {
      await ok(a, "VolumeDriver.Create", { Name: "during", Opts: {} });
      await Bun.sleep(TTL_S * 1000 + 100);
      // B answers from its cache and says so; it mounts what it knows; it creates nothing.
      const status = ((await ok(b, "VolumeDriver.Get", { Name: "before" })).Volume as { Status: { api: string } }).Status;
      expect(status.api).toContain("unreachable");
      const path = (await ok(b, "VolumeDriver.Mount", { Name: "before", ID: ID(3) })).Mountpoint as string;
      expect(path).toBe(join(tree, "before"));
      await ok(b, "VolumeDriver.Unmount", { Name: "before", ID: ID(3) });
      expect(await err(b, "VolumeDriver.Create", { Name: "on-b", Opts: {} })).toContain("BACKEND_FAILED");
      expect(await listed(a)).toContain("during");
    } finally {
      await relay.up();
    }
    const seconds = await secondsUntil(async () => (await listed(b)).includes("during"), 20);
    console.log(`[multi-host-quobyte] API back for B: B lists A's new volume after ${seconds.toFixed(2)} s`);
    expect(((await ok(b, "VolumeDriver.Get", { Name: "during" })).Volume as { Status: { api: string } }).Status.api).toBe("ok");
  });
});
