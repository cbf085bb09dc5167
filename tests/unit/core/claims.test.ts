import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Claims, type ClaimsHost } from "../../../src/core/claims.ts";
import { LeaseObserver } from "../../../src/core/lease-observer.ts";
import { makeTempDir, removeTempDir } from "../../support/tmp.ts";
import { expectPluginError } from "./helpers.ts";

const LEASE_MS = 10_000;

/** A host's Claims on the shared directory, with a clock the test moves by hand. */
function makeHost(dir: string, hostId: string, clock: { now: number }, mounted = new Set<string>()) {
  const warnings: string[] = [];
  const claims = new Claims({ dir, hostId, leaseTimeoutMs: LEASE_MS, now: () => clock.now, warn: (m) => warnings.push(m) });
  const host: ClaimsHost = { withVolumeLock: (_v, task) => task(), isMountedHere: (v) => mounted.has(v) };
  return { claims, warnings, mounted, start: () => claims.start(mounted, host) };
}

describe("LeaseObserver", () => {
  test("a host is alive until its value stands still for a whole lease of the observer's clock", () => {
    const clock = { now: 0 };
    const observer = new LeaseObserver(1000, () => clock.now);
    expect(observer.alive("a")).toBe(true);
    observer.observe("a", "t 1");
    clock.now = 999;
    observer.observe("a", "t 1");
    expect(observer.alive("a")).toBe(true);
    clock.now = 1000;
    expect(observer.alive("a")).toBe(false);
    observer.observe("a", "t 2");
    expect(observer.alive("a")).toBe(true);
    expect(observer.silentFor("a")).toBe(0);
  });

  test("a missing heartbeat is a value too: it expires like one that stands still", () => {
    const clock = { now: 0 };
    const observer = new LeaseObserver(1000, () => clock.now);
    observer.observe("a", undefined);
    clock.now = 1500;
    observer.observe("a", undefined);
    expect(observer.alive("a")).toBe(false);
  });
});

describe("Claims on one shared directory", () => {
  let dir: string;
  const stops: Claims[] = [];
  beforeEach(async () => {
    dir = await makeTempDir("dqp-claims-");
  });
  afterEach(async () => {
    for (const claims of stops.splice(0)) await claims.stop();
    await removeTempDir(dir);
  });
  async function started(hostId: string, clock: { now: number }, mounted?: Set<string>) {
    const host = makeHost(dir, hostId, clock, mounted);
    await host.start();
    stops.push(host.claims);
    return host;
  }

  test("Remove on B is refused while A claims the volume, naming A and since when; allowed after A releases", async () => {
    const clock = { now: 0 };
    const a = await started("host-a", clock);
    const b = await started("host-b", clock);
    await a.claims.claimForMount("data");
    let removed = 0;
    const error = await expectPluginError(b.claims.guardRemove("data", async () => void removed++), "VOLUME_IN_USE");
    expect(error.message).toMatch(/mounted on host\(s\) host-a \(since \d{4}-\d\d-\d\dT/);
    expect(removed).toBe(0);
    // The refused Remove dropped its marker: A can still mount.
    expect(await readdir(join(dir, "removing"))).toEqual([]);
    await a.claims.release("data");
    await b.claims.guardRemove("data", async () => void removed++);
    expect(removed).toBe(1);
  });

  test("a claim stops blocking once its host's heartbeat stood still for the lease, on B's clock", async () => {
    const clock = { now: 0 };
    const a = await started("host-a", clock);
    await a.claims.claimForMount("data");
    await a.claims.stop(); // A dies: no more heartbeats
    const b = await started("host-b", clock);
    await expectPluginError(b.claims.guardRemove("data", async () => {}), "VOLUME_IN_USE");
    clock.now = LEASE_MS - 1;
    await expectPluginError(b.claims.guardRemove("data", async () => {}), "VOLUME_IN_USE");
    clock.now = LEASE_MS;
    let removed = false;
    await b.claims.guardRemove("data", async () => {
      removed = true;
    });
    expect(removed).toBe(true);
  });

  test("a heartbeat that keeps changing keeps the claim alive past the lease", async () => {
    const clock = { now: 0 };
    const a = await started("host-a", clock);
    await a.claims.claimForMount("data");
    const b = await started("host-b", clock);
    // A beats by rewriting its heartbeat; B sees a new value each time it looks.
    for (let t = 1; t <= 5; t++) {
      await writeFile(join(dir, "hosts", "host-a"), `beat ${t}\n`);
      clock.now = t * (LEASE_MS / 2);
      await expectPluginError(b.claims.guardRemove("data", async () => {}), "VOLUME_IN_USE");
    }
  });

  test("Mount on A backs off while a live host is removing the volume, and withdraws its claim", async () => {
    const clock = { now: 0 };
    const a = await started("host-a", clock);
    const b = await started("host-b", clock);
    let mountError: unknown;
    await b.claims.guardRemove("data", async () => {
      // Between B's marker and B's deletion, A's Mount arrives.
      mountError = await a.claims.claimForMount("data").catch((error: unknown) => error);
    });
    expect(String(mountError)).toContain("being removed by host host-b");
    expect(await readdir(join(dir, "mounts", "host-a"))).toEqual([]);
  });

  test("a finished Remove leaves a tombstone: a Mount from a stale view is refused until the name is created again", async () => {
    const clock = { now: 0 };
    const a = await started("host-a", clock);
    const b = await started("host-b", clock);
    await b.claims.guardRemove("data", async () => {});
    expect(await readdir(join(dir, "removing"))).toEqual([]);
    const refused = await expectPluginError(a.claims.claimForMount("data"), "BACKEND_FAILED");
    expect(refused.message).toContain("was removed by host host-b");
    expect(await readdir(join(dir, "mounts", "host-a"))).toEqual([]);
    await b.claims.clearTombstone("data"); // what a Create does first, on any host
    await a.claims.claimForMount("data");
  });

  test("a refused Remove leaves no tombstone", async () => {
    const clock = { now: 0 };
    const a = await started("host-a", clock);
    const b = await started("host-b", clock);
    await a.claims.claimForMount("data");
    await expectPluginError(b.claims.guardRemove("data", async () => {}), "VOLUME_IN_USE");
    await expectPluginError(b.claims.guardRemove("data", async () => Promise.reject(new Error("disk"))), "VOLUME_IN_USE");
    expect(await readdir(join(dir, "removed"))).toEqual([]);
  });

  test("tombstones go once they stood for a lease of the sweeping host's clock", async () => {
    const clock = { now: 0 };
    const claims = new Claims({ dir, hostId: "host-s", leaseTimeoutMs: 1000, now: () => clock.now });
    await claims.start([], { withVolumeLock: (_v, task) => task(), isMountedHere: () => false });
    stops.push(claims);
    await claims.guardRemove("data", async () => {});
    expect(await readdir(join(dir, "removed"))).toEqual(["data"]);
    await Bun.sleep(claims.periodMs + 150); // first seen
    expect(await readdir(join(dir, "removed"))).toEqual(["data"]);
    clock.now = 1000;
    await Bun.sleep(claims.periodMs + 150);
    expect(await readdir(join(dir, "removed"))).toEqual([]);
  });

  test("a marker left by a dead host stops blocking after the lease; one of our own is dropped at start", async () => {
    const clock = { now: 0 };
    const a = await started("host-a", clock);
    await writeFile(join(dir, "removing", "gone"), `${JSON.stringify({ host: "host-c", since: "x" })}\n`);
    await writeFile(join(dir, "removing", "mine"), `${JSON.stringify({ host: "host-b", since: "x" })}\n`);
    await expectPluginError(a.claims.claimForMount("gone"), "BACKEND_FAILED");
    clock.now = LEASE_MS;
    await a.claims.claimForMount("gone");
    await started("host-b", clock);
    expect(await readdir(join(dir, "removing"))).toEqual(["gone"]);
  });

  test("a restarted host re-claims what it still has mounted and drops claims it no longer has", async () => {
    const clock = { now: 0 };
    const first = await started("host-a", clock);
    await first.claims.claimForMount("kept");
    await first.claims.claimForMount("dropped");
    await first.claims.stop();
    // Restart: the mount state (SQLite) says only "kept" is mounted.
    await started("host-a", clock, new Set(["kept"]));
    expect(await readdir(join(dir, "mounts", "host-a"))).toEqual(["kept"]);
    const b = await started("host-b", clock);
    clock.now = 10 * LEASE_MS; // only A's own fresh beats can keep it alive now...
    await writeFile(join(dir, "hosts", "host-a"), "new beat\n");
    await expectPluginError(b.claims.guardRemove("kept", async () => {}), "VOLUME_IN_USE");
  });

  test("two hosts with the same id are reported", async () => {
    const clock = { now: 0 };
    const a = makeHost(dir, "same", clock);
    await a.start();
    stops.push(a.claims);
    await writeFile(join(dir, "hosts", "same"), "someone else\n");
    await Bun.sleep(a.claims.periodMs + 300);
    expect(a.warnings.join("\n")).toContain("two hosts share this id");
  });

  test("a host id that is not one safe path component is refused", () => {
    for (const id of ["", "../x", ".hidden", "a/b", "x".repeat(65)]) {
      expect(() => new Claims({ dir, hostId: id, leaseTimeoutMs: LEASE_MS })).toThrow(/host id/);
    }
  });

  test("a claim is an empty file under its host; the heartbeat changes every period", async () => {
    const clock = { now: 0 };
    const a = await started("host-a", clock);
    await a.claims.claimForMount("data");
    expect(await readFile(join(dir, "mounts", "host-a", "data"), "utf8")).toBe("");
    const before = await readFile(join(dir, "hosts", "host-a"), "utf8");
    await Bun.sleep(a.claims.periodMs + 300);
    expect(await readFile(join(dir, "hosts", "host-a"), "utf8")).not.toBe(before);
  });
});
