// Two hosts, one real GlusterFS volume: the posix backend with --scope global, each host
// a plugin process in its own UTS + mount namespace with its own FUSE mount of the volume,
// its own state dir and socket. Mount claims keep a Remove on one host from deleting data
// another host has mounted; a host that dies stops pinning volumes after --lease-timeout.
// The measured times (Remove refused, then allowed, after a host died) are printed.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { CRASH_AT_ENV } from "../../src/system/crash-point.ts";
import { type GlusterVolume, startGlusterVolume } from "../support/glusterfs.ts";
import { type Host, type Hosts, startHosts } from "../support/multi-host.ts";
import { makeTempDir, removeTempDir } from "../support/tmp.ts";

const LEASE_S = 6;
/** The plugin refreshes its heartbeat every lease/4. */
const PERIOD_S = LEASE_S / 4;
/** GlusterFS FUSE attribute and entry caches (1 s by default). */
const FS_CACHE_S = 1;

let workDir: string;
let gluster: GlusterVolume;
let hosts: Hosts;
let a: Host;
let b: Host;
const mountDir = (host: Host) => join(host.dir, "mnt");

beforeAll(async () => {
  workDir = await makeTempDir("dqp-mh-");
  gluster = await startGlusterVolume(workDir);
  hosts = await startHosts({
    names: ["host-a", "host-b"],
    workDir,
    network: gluster.storage,
    prepare: (host) => gluster.mountInto(host.ns, mountDir(host)),
    release: (host) => gluster.unmountFrom(host.ns, mountDir(host)),
    pluginArgs: (host) => [
      "--backend", "posix", "--path", mountDir(host), "--scope", "global", "--mount-check", "mountpoint",
      "--lease-timeout", String(LEASE_S), "--log-level", "debug",
    ],
  });
  a = hosts.host("host-a");
  b = hosts.host("host-b");
}, 120_000);

afterAll(async () => {
  await hosts?.stop();
  await gluster?.stop();
  await removeTempDir(workDir);
}, 120_000);

const ID = (n: number) => n.toString(16).padStart(64, "0");

async function ok(host: Host, method: string, body: unknown): Promise<unknown> {
  const reply = await host.call(method, body);
  if (reply.status !== 200 || (reply.json as { Err?: string })?.Err) {
    throw new Error(`${host.name} ${method} ${JSON.stringify(body)}: ${reply.status} ${reply.text}\n${host.plugin?.stderr().slice(-3000)}`);
  }
  return reply.json;
}

async function err(host: Host, method: string, body: unknown): Promise<string> {
  const reply = await host.call(method, body);
  const text = (reply.json as { Err?: string } | undefined)?.Err;
  if (!text) throw new Error(`${host.name} ${method} ${JSON.stringify(body)} succeeded; expected an Err`);
  return text;
}

async function listed(host: Host): Promise<string[]> {
  const reply = (await ok(host, "VolumeDriver.List", {})) as { Volumes: { Name: string }[] };
  return reply.Volumes.map((v) => v.Name);
}

/** Seconds until `check` holds, polling every 100 ms; throws after `limitS`. */
async function secondsUntil(check: () => Promise<boolean>, limitS: number): Promise<number> {
  const started = performance.now();
  for (;;) {
    if (await check()) return (performance.now() - started) / 1000;
    if (performance.now() - started > limitS * 1000) throw new Error(`not within ${limitS} s`);
    await Bun.sleep(100);
  }
}

describe("posix --scope global on GlusterFS, two hosts", () => {
  test("each host has its own hostname, FUSE mount and claims identity", async () => {
    expect((await a.ns.run(["hostname"])).trim()).toBe("host-a");
    expect((await b.ns.run(["hostname"])).trim()).toBe("host-b");
    for (const host of [a, b]) expect(await host.ns.run(["findmnt", "-n", "-o", "FSTYPE", mountDir(host)])).toContain("fuse.glusterfs");
    // ... which the other host does not see: each has its own mount namespace.
    expect((await a.ns.run(["findmnt", "-n", "-o", "FSTYPE", mountDir(b)]).catch(() => "")).trim()).toBe("");
    // Each plugin publishes its heartbeat under its hostname.
    const claims = join(gluster.brick, ".docker-quobyte-plugin", "claims", "hosts");
    expect((await readdir(claims)).sort()).toEqual(["host-a", "host-b"]);
  });

  test("created on A: Get, List and Mount on B; data written through A is read through B", async () => {
    await ok(a, "VolumeDriver.Create", { Name: "shared", Opts: {} });
    expect(await ok(b, "VolumeDriver.Get", { Name: "shared" })).toMatchObject({ Volume: { Name: "shared", Mountpoint: join(mountDir(b), "shared") } });
    expect(await listed(b)).toContain("shared");
    const onA = (await ok(a, "VolumeDriver.Mount", { Name: "shared", ID: ID(1) })) as { Mountpoint: string };
    const onB = (await ok(b, "VolumeDriver.Mount", { Name: "shared", ID: ID(2) })) as { Mountpoint: string };
    await writeFile(join(a.viewOf(onA.Mountpoint), "from-a.txt"), "written on host-a\n");
    expect(await readFile(join(b.viewOf(onB.Mountpoint), "from-a.txt"), "utf8")).toBe("written on host-a\n");
    await ok(a, "VolumeDriver.Unmount", { Name: "shared", ID: ID(1) });
    await ok(b, "VolumeDriver.Unmount", { Name: "shared", ID: ID(2) });
  });

  test("20 names created on A and B at the same moment: one volume each", async () => {
    const names = Array.from({ length: 20 }, (_, i) => `race-${i}`);
    await Promise.all(names.flatMap((Name) => [ok(a, "VolumeDriver.Create", { Name }), ok(b, "VolumeDriver.Create", { Name })]));
    const dirs = (await readdir(gluster.brick)).filter((name) => name.startsWith("race-"));
    expect(dirs.sort()).toEqual([...names].sort());
    // A host that wrote a metadata file which the other host then replaced (rename) reads
    // its own old copy until the FUSE entry cache expires (1 s): wait it out, as an
    // engine's later Get would.
    await Bun.sleep(FS_CACHE_S * 1000 + 200);
    for (const host of [a, b]) {
      for (const Name of names) await ok(host, "VolumeDriver.Get", { Name });
      const seen = (await listed(host)).filter((name) => name.startsWith("race-"));
      expect(seen.sort()).toEqual([...names].sort());
    }
  });

  test("Remove on B is refused while A has it mounted and the data survives; after Unmount on A it is gone on both within 3 s", async () => {
    await ok(a, "VolumeDriver.Create", { Name: "guarded" });
    const { Mountpoint } = (await ok(a, "VolumeDriver.Mount", { Name: "guarded", ID: ID(3) })) as { Mountpoint: string };
    await writeFile(join(a.viewOf(Mountpoint), "data.txt"), "precious\n");
    const refusal = await err(b, "VolumeDriver.Remove", { Name: "guarded" });
    expect(refusal).toMatch(/mounted on host\(s\) host-a \(since \d{4}-\d\d-\d\dT[^)]+\)/);
    expect(await readFile(join(b.viewOf(join(mountDir(b), "guarded")), "data.txt"), "utf8")).toBe("precious\n");
    expect(await readFile(join(a.viewOf(Mountpoint), "data.txt"), "utf8")).toBe("precious\n");

    await ok(a, "VolumeDriver.Unmount", { Name: "guarded", ID: ID(3) });
    await ok(b, "VolumeDriver.Remove", { Name: "guarded" });
    const gone = async (host: Host) =>
      (await host.call("VolumeDriver.Get", { Name: "guarded" })).text.includes("does not exist") && !(await listed(host)).includes("guarded");
    const seconds = await secondsUntil(async () => (await gone(a)) && (await gone(b)), 3);
    console.log(`multi-host posix: volume gone on both hosts ${seconds.toFixed(2)} s after Remove`);
  });

  test("Mount on A racing Remove on B: never both succeed, and a volume answered to a Mount keeps its data", async () => {
    const outcomes = { mounted: 0, removed: 0 };
    for (let round = 0; round < 12; round++) {
      const Name = `duel-${round}`;
      await ok(a, "VolumeDriver.Create", { Name });
      await Bun.sleep(FS_CACHE_S * 1000 * (round % 2)); // half the rounds with B's view settled
      const [mount, remove] = await Promise.all([
        a.call("VolumeDriver.Mount", { Name, ID: ID(100 + round) }),
        b.call("VolumeDriver.Remove", { Name }),
      ]);
      const mounted = !(mount.json as { Err?: string }).Err;
      const removed = !(remove.json as { Err?: string }).Err;
      expect(mounted && removed).toBe(false);
      if (mounted) {
        outcomes.mounted++;
        const { Mountpoint } = mount.json as { Mountpoint: string };
        await writeFile(join(a.viewOf(Mountpoint), "alive.txt"), "yes\n");
        await ok(a, "VolumeDriver.Unmount", { Name, ID: ID(100 + round) });
        await ok(a, "VolumeDriver.Remove", { Name });
      } else {
        outcomes.removed++;
      }
    }
    // A Mount that lost withdrew its claim; a Remove that lost dropped its marker.
    const claims = join(gluster.brick, ".docker-quobyte-plugin", "claims");
    expect((await readdir(join(claims, "mounts", "host-a"))).filter((n) => n.startsWith("duel-"))).toEqual([]);
    expect((await readdir(join(claims, "removing"))).filter((n) => !n.startsWith("."))).toEqual([]);
    console.log(`multi-host posix: Mount/Remove duel: ${outcomes.mounted} rounds the Mount won, ${outcomes.removed} the Remove`);
  }, 60_000);

  test("B killed between placing its removal marker and checking claims: A's Mount waits for B's restart, which drops the marker", async () => {
    await ok(a, "VolumeDriver.Create", { Name: "interrupted-remove" });
    await b.stopPlugin();
    await b.start({ [CRASH_AT_ENV]: "claims-remove:marked" });
    await b.call("VolumeDriver.Remove", { Name: "interrupted-remove" }).catch(() => undefined);
    expect(await b.plugin?.proc.exited).toBe(137);
    await b.kill();
    expect(await err(a, "VolumeDriver.Mount", { Name: "interrupted-remove", ID: ID(6) })).toContain("being removed by host host-b");
    await b.start();
    const { Mountpoint } = (await ok(a, "VolumeDriver.Mount", { Name: "interrupted-remove", ID: ID(6) })) as { Mountpoint: string };
    await writeFile(join(a.viewOf(Mountpoint), "still.txt"), "here\n");
    await ok(a, "VolumeDriver.Unmount", { Name: "interrupted-remove", ID: ID(6) });
    await ok(b, "VolumeDriver.Remove", { Name: "interrupted-remove" });
  }, 60_000);

  test("A killed between writing its claim and recording the mount: Remove on B waits for A's restart, which drops the claim", async () => {
    await ok(a, "VolumeDriver.Create", { Name: "interrupted-mount" });
    await a.stopPlugin();
    await a.start({ [CRASH_AT_ENV]: "claims-mount:claimed" });
    await a.call("VolumeDriver.Mount", { Name: "interrupted-mount", ID: ID(7) }).catch(() => undefined);
    await a.plugin?.proc.exited;
    await a.kill();
    expect(await err(b, "VolumeDriver.Remove", { Name: "interrupted-mount" })).toContain("host-a");
    await a.start();
    await ok(b, "VolumeDriver.Remove", { Name: "interrupted-mount" });
  }, 60_000);

  test("A SIGKILLed while holding a mount: Remove on B refused at once, allowed once A's claim expired", async () => {
    await ok(a, "VolumeDriver.Create", { Name: "orphan" });
    await ok(a, "VolumeDriver.Mount", { Name: "orphan", ID: ID(4) });
    await a.kill();
    const killedAt = performance.now();
    expect(await err(b, "VolumeDriver.Remove", { Name: "orphan" })).toContain("host-a");
    const refusedAfter = (performance.now() - killedAt) / 1000;
    let lastRefused = refusedAfter;
    for (;;) {
      const reply = await b.call("VolumeDriver.Remove", { Name: "orphan" });
      const at = (performance.now() - killedAt) / 1000;
      if (!(reply.json as { Err?: string }).Err) {
        console.log(
          `multi-host posix: --lease-timeout ${LEASE_S} s: Remove on B refused ${refusedAfter.toFixed(2)} s after host-a was SIGKILLed ` +
            `(last refusal at ${lastRefused.toFixed(2)} s), allowed ${at.toFixed(2)} s after`,
        );
        // Never before the lease could have run out; at most a lease plus two heartbeat periods and the cache after.
        expect(at).toBeGreaterThanOrEqual(LEASE_S - PERIOD_S);
        expect(at).toBeLessThanOrEqual(LEASE_S + 2 * PERIOD_S + FS_CACHE_S + 1);
        break;
      }
      expect((reply.json as { Err: string }).Err).toContain("host-a");
      lastRefused = at;
      if (at > 3 * LEASE_S) throw new Error(`still refused ${at} s after the kill`);
      await Bun.sleep(250);
    }
    // A comes back: it re-claims the mount it recorded, of a volume that is gone now; the
    // engine's Unmount still succeeds and drops the claim.
    await a.start();
    await ok(a, "VolumeDriver.Unmount", { Name: "orphan", ID: ID(4) });
    expect(await readdir(join(gluster.brick, ".docker-quobyte-plugin", "claims", "mounts", "host-a"))).not.toContain("orphan");
  }, 60_000);

  test("A SIGKILLed and restarted at once: its claim holds past the lease timeout until A unmounts", async () => {
    await ok(a, "VolumeDriver.Create", { Name: "phoenix" });
    await ok(a, "VolumeDriver.Mount", { Name: "phoenix", ID: ID(5) });
    await a.kill();
    await a.start();
    await Bun.sleep((LEASE_S + 2 * PERIOD_S + FS_CACHE_S) * 1000);
    expect(await err(b, "VolumeDriver.Remove", { Name: "phoenix" })).toContain("host-a");
    await ok(a, "VolumeDriver.Unmount", { Name: "phoenix", ID: ID(5) });
    await ok(b, "VolumeDriver.Remove", { Name: "phoenix" });
  }, 60_000);
});
