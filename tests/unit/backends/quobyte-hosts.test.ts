/**
 * Two hosts of one cluster on one Quobyte: each its own backend, state directory and road
 * to the API; one shared mount tree. The process-level scenarios (own UTS and mount
 * namespaces, the compiled binary) are in tests/multihost; these pin the rules down.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { QuobyteBackend, QuobyteBackendOptions } from "../../../src/backends/quobyte/quobyte-backend.ts";
import { Driver } from "../../../src/core/driver.ts";
import { MountRefs } from "../../../src/core/mount-refs.ts";
import { type ApiRelay, startApiRelay } from "../../support/api-relay.ts";
import { expectPluginError } from "../core/helpers.ts";
import { makeQuobyteHarness, type QuobyteHarness } from "./quobyte-harness.ts";

const TTL_MS = 400;

interface Host {
  name: string;
  relay: ApiRelay;
  backend: QuobyteBackend;
  refs: MountRefs;
  driver: Driver;
}

let h: QuobyteHarness;
let hosts: Host[];

async function startHost(name: string, overrides: Partial<QuobyteBackendOptions> = {}, relay?: ApiRelay): Promise<Host> {
  const road = relay ?? (await startApiRelay(h.fake));
  const stateDir = join(h.dir, `state-${name}`);
  const backend = h.newBackend({ api: h.apiAt(road.url), stateDir, cacheTtlMs: TTL_MS, apiWaitMs: 1000, ...overrides });
  await backend.init();
  const refs = MountRefs.open({ stateDir, bootId: `boot-${name}` });
  const host = { name, relay: road, backend, refs, driver: new Driver(backend, refs, { timeoutMs: 10_000 }) };
  hosts.push(host);
  return host;
}

async function stopHost(host: Host): Promise<void> {
  hosts = hosts.filter((other) => other !== host);
  host.refs.close();
  await host.backend.close();
}

beforeEach(async () => {
  h = await makeQuobyteHarness();
  hosts = [];
});
afterEach(async () => {
  for (const host of [...hosts]) {
    await stopHost(host);
    await host.relay.close();
  }
  await h.cleanup();
});

const tenantId = () => h.fake.tenants[0]?.id ?? "";
const names = async (host: Host) => (await host.driver.list()).map((v) => v.name).sort();
const calls = () => Object.values(h.fake.methodCounts()).reduce((a, b) => a + b, 0);

/** Polls until `check` passes or `ms` ran out; returns the time it took. */
async function within(ms: number, check: () => Promise<void>): Promise<number> {
  const started = Date.now();
  for (;;) {
    try {
      await check();
      return Date.now() - started;
    } catch (error) {
      if (Date.now() - started > ms) throw error;
      await Bun.sleep(50);
    }
  }
}

describe("every host sees every volume", () => {
  test("created on A: Get, List, Mount and Path on B, with the same CreatedAt, options and quota", async () => {
    const a = await startHost("a");
    const b = await startHost("b");
    await a.driver.create("shared", { size: "1G", mode: "0750" });
    const onA = await a.driver.get("shared");
    const onB = await b.driver.get("shared");
    const api = h.fake.volumes()[0];
    expect(onB.createdAt).toBe(new Date(api?.createdMs ?? 0).toISOString());
    expect(onB.createdAt).toBe(onA.createdAt ?? "");
    expect(onB.status).toMatchObject({ managed: true, uuid: api?.uuid, options: { size: "1G", mode: "0750" }, quotaBytes: 2 ** 30 });
    expect(onB.mountpoint).toBe(onA.mountpoint);
    await within(2000, async () => expect(await names(b)).toEqual(["shared"]));
    const path = await b.driver.mount("shared", "b".repeat(64));
    expect(await b.driver.path("shared")).toBe(path);
    await writeFile(join(path, "from-b"), "hello");
    expect(await readFile(join(await a.driver.mount("shared", "a".repeat(64)), "from-b"), "utf8")).toBe("hello");
  });

  test("a host that restarts with the API down still serves the volumes from its cache, and Status says so", async () => {
    const a = await startHost("a");
    await a.driver.create("v", {});
    await stopHost(a);
    await a.relay.down();
    const again = await startHost("a", {}, a.relay);
    expect(await names(again)).toEqual(["v"]);
    await Bun.sleep(TTL_MS + 50);
    const record = await again.driver.get("v");
    expect(String(record.status.api)).toContain("unreachable");
    expect(String(record.status.api)).toContain("cache");
    // The data is on the mount, not behind the API: Mount works, and is not slowed by it.
    expect(await again.driver.mount("v", "1".repeat(64))).toBe(join(h.mount, "v"));
    await again.relay.up();
    await within(20_000, async () => expect((await again.driver.get("v")).status.api).toBe("ok"));
  });
});

describe("volumes made by something else", () => {
  test("stay out of List (unless --list-all), Get finds them, and Create adopts them for every host", async () => {
    const foreign = h.fake.addVolume({ name: "ui-made", tenantId: tenantId() });
    const a = await startHost("a");
    const b = await startHost("b");
    const all = await startHost("all", { listAll: true });
    expect(await names(a)).toEqual([]);
    expect(await names(all)).toEqual(["ui-made"]);
    expect((await b.driver.get("ui-made")).status).toMatchObject({ managed: false, uuid: foreign.uuid });
    await expectPluginError(b.driver.remove("ui-made"), "NOT_MANAGED");

    await b.driver.create("ui-made", { on_remove: "keep" });
    expect(h.fake.volumes()).toHaveLength(1);
    expect(h.fake.volumes()[0]?.labels?.map((l) => l.name)).toEqual(["docker-quobyte-plugin"]);
    expect(await names(b)).toEqual(["ui-made"]);
    // A sees the adoption once its labels are re-read (at most 3 TTLs).
    await within(4 * TTL_MS + 1000, async () => expect(await names(a)).toEqual(["ui-made"]));
    expect((await a.driver.get("ui-made")).status).toMatchObject({ managed: true, onRemove: "keep" });

    // on_remove=keep: the volume stays in Quobyte, this plugin lets go of it everywhere;
    // a repeated Remove (an answer lost on the way) succeeds and changes nothing.
    await a.driver.remove("ui-made");
    expect(h.fake.volumes().map((v) => v.uuid)).toEqual([foreign.uuid]);
    expect(JSON.parse(h.fake.volumes()[0]?.labels?.[0]?.value ?? "{}")).toMatchObject({ released: true });
    expect(await names(a)).toEqual([]);
    await within(4 * TTL_MS + 1000, async () => expect(await names(b)).toEqual([]));
    await b.driver.remove("ui-made");
    expect(h.fake.volumes().map((v) => v.uuid)).toEqual([foreign.uuid]);
    expect((await b.driver.get("ui-made")).status.managed).toBe(false);
    // Created again: managed again, on every host.
    await b.driver.create("ui-made", {});
    expect(await names(b)).toEqual(["ui-made"]);
  });

  test("a second cluster (another default tenant) stays out of this one's List", async () => {
    const other = h.fake.addTenant({ name: "Other" });
    const a = await startHost("a");
    const stranger = await startHost("stranger", { tenant: "Other" });
    await stranger.driver.create("theirs", {});
    await a.driver.create("ours", {});
    await Bun.sleep(TTL_MS + 50);
    expect(await names(a)).toEqual(["ours"]);
    expect(await names(stranger)).toEqual(["theirs"]);
    await expectPluginError(a.driver.get("theirs"), "VOLUME_NOT_FOUND");
    expect(h.fake.volumes().find((v) => v.name === "theirs")?.tenantId).toBe(other.id);
  });

  test("this cluster's volume in another tenant (-o tenant_id) is seen by every host", async () => {
    h.fake.addTenant({ name: "Projects" });
    const a = await startHost("a");
    const b = await startHost("b");
    await a.driver.create("elsewhere", { tenant_id: "Projects" });
    await within(2000, async () => expect(await names(b)).toEqual(["elsewhere"]));
    expect((await b.driver.get("elsewhere")).status.tenant).toBe(h.fake.tenants.find((t) => t.name === "Projects")?.id ?? "");
    await b.driver.remove("elsewhere");
    expect(h.fake.volumes()).toEqual([]);
  });
});

describe("mount claims", () => {
  test("live in the control volume, made once through the API; Docker cannot name it, List never shows it", async () => {
    const a = await startHost("a", { claims: true });
    expect(a.backend.claimsDir).toBe(join(h.mount, "docker-quobyte-plugin.control", "claims"));
    expect(h.fake.volumes().map((v) => v.name)).toEqual(["docker-quobyte-plugin.control"]);
    h.fake.resetCounts();
    const b = await startHost("b", { claims: true, listAll: true });
    expect(b.backend.claimsDir).toBe(a.backend.claimsDir ?? "");
    // It existed: the second host made no createVolume.
    expect(h.fake.methodCounts().createVolume).toBeUndefined();
    expect(await names(b)).toEqual([]);
    await expectPluginError(b.driver.get("docker-quobyte-plugin.control"), "INVALID_NAME");
    await expectPluginError(b.driver.create("docker-quobyte-plugin.control", {}), "INVALID_NAME");
  });
});

describe("a Remove on one host", () => {
  test("makes the volume disappear everywhere within the TTL, and Mount elsewhere is refused at once", async () => {
    const a = await startHost("a");
    const b = await startHost("b");
    const patient = await startHost("patient", { cacheTtlMs: 60_000 });
    await a.driver.create("doomed", {});
    expect(await names(patient)).toEqual(["doomed"]);
    await Bun.sleep(1100); // past Mount's own grace: Mount asks the API
    await a.driver.remove("doomed");
    // The cache (TTL 60 s) still knows it, but the API does not: Mount asks and refuses.
    const error = await expectPluginError(patient.driver.mount("doomed", "1".repeat(64)), "VOLUME_NOT_FOUND");
    expect(error.message).toContain("no longer exists");
    expect(patient.driver.mounts().size).toBe(0);
    await expectPluginError(patient.driver.get("doomed"), "VOLUME_NOT_FOUND");

    await a.driver.create("second", {});
    await b.driver.get("second");
    await a.driver.remove("second");
    const took = await within(3000, async () => {
      await expectPluginError(b.driver.get("second"), "VOLUME_NOT_FOUND");
      expect(await names(b)).toEqual([]);
    });
    expect(took).toBeLessThan(TTL_MS + 1000);
  });

  test("no host answers Get from its cache once the API says the volume is gone", async () => {
    const a = await startHost("a");
    const b = await startHost("b");
    await a.driver.create("v", {});
    await b.driver.get("v");
    h.fake.reset(); // deleted behind everyone's back
    await Bun.sleep(TTL_MS + 50);
    await expectPluginError(b.driver.get("v"), "VOLUME_NOT_FOUND");
    await expectPluginError(a.driver.get("v"), "VOLUME_NOT_FOUND");
    expect(await names(a)).toEqual([]);
  });
});

describe("the API down for B while A keeps working", () => {
  test("B answers from its cache and says so, refuses Create, and catches up when the API is back", async () => {
    const a = await startHost("a");
    const b = await startHost("b");
    await a.driver.create("before", {});
    await b.driver.get("before");
    await b.relay.down();
    await a.driver.create("during", {});
    await a.driver.remove("before");
    await Bun.sleep(TTL_MS + 50);

    const started = Date.now();
    const stale = await b.driver.get("before");
    expect(String(stale.status.api)).toContain("unreachable");
    expect(await names(b)).toEqual(["before"]);
    expect(Date.now() - started).toBeLessThan(2500);
    await expectPluginError(b.driver.create("new-on-b", {}), "BACKEND_FAILED");
    // Made on A meanwhile: B cannot know, and does not claim it does not exist.
    const unknown = await expectPluginError(b.driver.get("during"), "BACKEND_FAILED");
    expect(unknown.message).toContain("cannot tell whether");
    expect(await names(a)).toEqual(["during"]);

    await b.relay.up();
    await within(20_000, async () => {
      expect(await names(b)).toEqual(["during"]);
      await expectPluginError(b.driver.get("before"), "VOLUME_NOT_FOUND");
    });
    expect((await b.driver.get("during")).status.api).toBe("ok");
  });
});

describe("API cost", () => {
  test("Get and Path of a volume confirmed within the TTL cost no API call", async () => {
    const a = await startHost("a", { cacheTtlMs: 60_000 });
    const b = await startHost("b", { cacheTtlMs: 60_000 });
    for (const name of ["x", "y", "z"]) await a.driver.create(name, {});
    await b.driver.list();
    await b.driver.mount("x", "1".repeat(64));
    const before = calls();
    for (let i = 0; i < 50; i++) {
      for (const name of ["x", "y", "z"]) await b.driver.get(name);
      await b.driver.path("x");
      await b.driver.list();
    }
    expect(calls()).toBe(before);
  });

  test("a burst of Gets on stale volumes shares one refresh", async () => {
    const a = await startHost("a");
    for (let i = 0; i < 10; i++) await a.driver.create(`v${i}`, {});
    await a.driver.list(); // labels known: a refresh is then one getVolumeList
    await Bun.sleep(TTL_MS + 50);
    h.fake.resetCounts();
    await Promise.all(Array.from({ length: 10 }, (_, i) => a.driver.get(`v${i}`)));
    expect(h.fake.methodCounts()).toEqual({ getVolumeList: 1 });
  });

  test("a Mount and Unmount pair costs at most 2 calls, also on a stale cache", async () => {
    const a = await startHost("a");
    await a.driver.create("m", {});
    for (const wait of [0, 1100, TTL_MS + 50]) {
      await Bun.sleep(wait);
      h.fake.resetCounts();
      await a.driver.mount("m", "1".repeat(64));
      await a.driver.unmount("m", "1".repeat(64));
      expect(calls()).toBeLessThanOrEqual(2);
    }
  });
});
