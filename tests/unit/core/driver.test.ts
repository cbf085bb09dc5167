import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Claims } from "../../../src/core/claims.ts";
import { Driver } from "../../../src/core/driver.ts";
import { PluginError } from "../../../src/core/errors.ts";
import { MountRefs } from "../../../src/core/mount-refs.ts";
import type { Backend, Scope, VolumeOptions, VolumeRecord, VolumeSummary } from "../../../src/core/types.ts";
import { makeTempDir, removeTempDir } from "../../support/tmp.ts";
import { type Deferred, deferred, expectPluginError, settle, sleep } from "./helpers.ts";

type Op = "init" | "create" | "remove" | "inspect" | "list" | "prepareMount" | "close";

/** An in-memory Backend that records every call; hooks can delay or fail an operation. */
class FakeBackend implements Backend {
  readonly kind = "fake";
  readonly scope: Scope = "local";
  readonly optionNames: readonly string[] = ["size", "tier"];
  readonly volumes = new Map<string, { options: VolumeOptions }>();
  readonly calls: { op: Op; name?: string; options?: VolumeOptions }[] = [];
  /** Awaited before the named operation does its work. */
  readonly gates = new Map<Op, Deferred<void> | ((name: string) => Promise<void>)>();

  private async gate(op: Op, name = ""): Promise<void> {
    const gate = this.gates.get(op);
    if (gate === undefined) return;
    if (typeof gate === "function") await gate(name);
    else await gate.promise;
  }

  ops(): string[] {
    return this.calls.map((c) => (c.name === undefined ? c.op : `${c.op} ${c.name}`));
  }

  async init(): Promise<void> {
    this.calls.push({ op: "init" });
  }
  async create(name: string, options: VolumeOptions): Promise<void> {
    this.calls.push({ op: "create", name, options });
    await this.gate("create", name);
    if (!this.volumes.has(name)) this.volumes.set(name, { options });
  }
  async remove(name: string): Promise<void> {
    this.calls.push({ op: "remove", name });
    await this.gate("remove", name);
    this.volumes.delete(name);
  }
  async inspect(name: string): Promise<VolumeRecord | undefined> {
    this.calls.push({ op: "inspect", name });
    await this.gate("inspect", name);
    const volume = this.volumes.get(name);
    if (!volume) return undefined;
    return {
      name,
      mountpoint: this.mountpointOf(name),
      createdAt: "2024-01-02T03:04:05.000Z",
      status: { backend: "fake", options: volume.options },
    };
  }
  async list(): Promise<VolumeSummary[]> {
    this.calls.push({ op: "list" });
    await this.gate("list");
    return [...this.volumes.keys()].map((name) => ({ name, mountpoint: this.mountpointOf(name) }));
  }
  async prepareMount(name: string): Promise<string> {
    this.calls.push({ op: "prepareMount", name });
    await this.gate("prepareMount", name);
    return this.mountpointOf(name);
  }
  private mountpointOf(name: string): string {
    return `/fake/${name}`;
  }
  async health(): Promise<{ state: string; detail: string }> {
    return { state: "live", detail: "fake" };
  }

  async close(): Promise<void> {
    this.calls.push({ op: "close" });
  }
}

describe("Driver", () => {
  let dir: string;
  let backend: FakeBackend;
  let refs: MountRefs;
  let driver: Driver;

  beforeEach(async () => {
    dir = await makeTempDir("dqp-driver-");
    backend = new FakeBackend();
    refs = MountRefs.open({ stateDir: dir, bootId: "driver-boot" });
    driver = new Driver(backend, refs, { timeoutMs: 5000 });
  });

  afterEach(async () => {
    // Let late tasks (timed-out work) finish before the database goes away.
    for (const gate of backend.gates.values()) if (typeof gate !== "function") gate.resolve();
    backend.gates.clear();
    await settle();
    refs.close();
    await removeTempDir(dir);
  });

  describe("validation before any backend call", () => {
    test("an invalid name is refused with INVALID_NAME by every operation without calling the backend", async () => {
      for (const name of ["", "..", "a/b", ".x", "x\ny", "a".repeat(256), 7, null]) {
        await expectPluginError(driver.create(name, {}), "INVALID_NAME");
        await expectPluginError(driver.remove(name), "INVALID_NAME");
        await expectPluginError(driver.mount(name, "id"), "INVALID_NAME");
        await expectPluginError(driver.unmount(name, "id"), "INVALID_NAME");
        await expectPluginError(driver.path(name), "INVALID_NAME");
        await expectPluginError(driver.get(name), "INVALID_NAME");
      }
      expect(backend.calls).toEqual([]);
      expect(refs.snapshot().size).toBe(0);
    });

    test("an invalid mount ID is refused with INVALID_REQUEST without calling the backend or recording anything", async () => {
      backend.volumes.set("v", { options: {} });
      for (const id of ["", "x".repeat(257), 5, null, undefined, {}]) {
        await expectPluginError(driver.mount("v", id), "INVALID_REQUEST");
        await expectPluginError(driver.unmount("v", id), "INVALID_REQUEST");
      }
      expect(backend.calls).toEqual([]);
      expect(refs.count("v")).toBe(0);
    });

    test("a mount ID of 256 characters is accepted", async () => {
      backend.volumes.set("v", { options: {} });
      const id = "f".repeat(256);
      await driver.mount("v", id);
      expect(refs.count("v")).toBe(1);
      await driver.unmount("v", id);
      expect(refs.count("v")).toBe(0);
    });

    test("options are checked against backend.optionNames before the backend is called", async () => {
      const unknown = await expectPluginError(driver.create("v", { size: "1G", mode: "0700" }), "INVALID_OPTION");
      expect(unknown.message).toContain('"mode"');
      expect(unknown.message).toContain("size, tier");
      expect(unknown.volume).toBe("v");
      await expectPluginError(driver.create("v", { size: 1 }), "INVALID_OPTION");
      await expectPluginError(driver.create("v", { tier: null }), "INVALID_OPTION");
      await expectPluginError(driver.create("v", "size=1"), "INVALID_OPTION");
      await expectPluginError(driver.create("v", ["size"]), "INVALID_OPTION");
      await expectPluginError(driver.create("v", { __proto__: null, toString: "x" }), "INVALID_OPTION");
      expect(backend.calls).toEqual([]);
    });

    test("accepted options reach the backend exactly, and missing options become {}", async () => {
      await driver.create("a", { size: "1G", tier: "ssd" });
      await driver.create("b", null);
      await driver.create("c", undefined);
      await driver.create("d", {});
      expect(backend.calls).toEqual([
        { op: "create", name: "a", options: { size: "1G", tier: "ssd" } },
        { op: "create", name: "b", options: {} },
        { op: "create", name: "c", options: {} },
        { op: "create", name: "d", options: {} },
      ]);
    });

    test("a backend with no options refuses every option", async () => {
      const bare = Object.assign(new FakeBackend(), { optionNames: [] as readonly string[] });
      const d = new Driver(bare, refs, { timeoutMs: 0 });
      await expectPluginError(d.create("v", { size: "1" }), "INVALID_OPTION");
      await d.create("v", {});
      expect(bare.ops()).toEqual(["create v"]);
    });
  });

  describe("rules of the operations", () => {
    test("Path of a volume that is not mounted here fails with NOT_MOUNTED; of an unknown one with VOLUME_NOT_FOUND", async () => {
      backend.volumes.set("v", { options: {} });
      const error = await expectPluginError(driver.path("v"), "NOT_MOUNTED");
      expect(error.volume).toBe("v");
      await expectPluginError(driver.path("nope"), "VOLUME_NOT_FOUND");
      await driver.mount("v", "id");
      expect(await driver.path("v")).toBe("/fake/v");
      await driver.unmount("v", "id");
      await expectPluginError(driver.path("v"), "NOT_MOUNTED");
    });

    test("Mount of an unknown volume fails with VOLUME_NOT_FOUND, never prepares it and records nothing", async () => {
      await expectPluginError(driver.mount("nope", "id"), "VOLUME_NOT_FOUND");
      expect(backend.ops()).toEqual(["inspect nope"]);
      expect(refs.count("nope")).toBe(0);
    });

    test("a Mount the backend fails records nothing", async () => {
      backend.volumes.set("v", { options: {} });
      backend.gates.set("prepareMount", async () => {
        throw new PluginError("BACKEND_FAILED", "unreachable");
      });
      await expectPluginError(driver.mount("v", "id"), "BACKEND_FAILED");
      expect(refs.count("v")).toBe(0);
      await driver.remove("v");
      expect(backend.volumes.has("v")).toBe(false);
    });

    test("Remove while mounted fails with VOLUME_IN_USE without calling backend.remove", async () => {
      backend.volumes.set("v", { options: {} });
      await driver.mount("v", "id");
      backend.calls.length = 0;
      const error = await expectPluginError(driver.remove("v"), "VOLUME_IN_USE");
      expect(error.message).toContain("1 mount");
      expect(backend.ops()).toEqual([]);
      expect(backend.volumes.has("v")).toBe(true);
    });

    test("Remove counts only mounts of that volume", async () => {
      backend.volumes.set("v", { options: {} });
      backend.volumes.set("w", { options: {} });
      await driver.mount("w", "id");
      await driver.remove("v");
      expect(backend.ops()).toContain("remove v");
    });

    test("Get adds this host's mount count to the backend's Status and never creates", async () => {
      backend.volumes.set("v", { options: { size: "1G" } });
      await driver.mount("v", "a");
      await driver.mount("v", "a");
      await driver.mount("v", "b");
      const record = await driver.get("v");
      expect(record).toEqual({
        name: "v",
        mountpoint: "/fake/v",
        createdAt: "2024-01-02T03:04:05.000Z",
        status: { backend: "fake", options: { size: "1G" }, mounts: 3 },
      });
      await expectPluginError(driver.get("unknown"), "VOLUME_NOT_FOUND");
      expect(backend.ops().filter((op) => op.startsWith("create"))).toEqual([]);
    });

    test("Unmount of an unknown volume or ID succeeds without asking the backend", async () => {
      await driver.unmount("nope", "id");
      expect(backend.calls).toEqual([]);
    });

    test("mounts() reports this host's mounts per volume", async () => {
      backend.volumes.set("v", { options: {} });
      backend.volumes.set("w", { options: {} });
      await driver.mount("v", "a");
      await driver.mount("v", "b");
      await driver.mount("w", "a");
      expect(driver.mounts()).toEqual(new Map([["v", 2], ["w", 1]]));
    });

    test("the scope is the backend's unless overridden", () => {
      expect(driver.capabilities()).toEqual({ scope: "local" });
      expect(new Driver(backend, refs, { timeoutMs: 0, scope: "global" }).capabilities()).toEqual({ scope: "global" });
    });
  });

  describe("per-volume serialisation", () => {
    test("a slow Create of one volume does not delay Get of another", async () => {
      backend.volumes.set("b", { options: {} });
      const slow = deferred();
      backend.gates.set("create", async (name) => {
        if (name === "a") await slow.promise;
      });
      const creating = driver.create("a", {});
      await settle();
      const record = await driver.get("b");
      expect(record.name).toBe("b");
      expect(backend.volumes.has("a")).toBe(false);
      slow.resolve();
      await creating;
      expect(backend.volumes.has("a")).toBe(true);
    });

    test("operations on one volume wait for each other and run in arrival order", async () => {
      const slow = deferred();
      backend.gates.set("create", async () => slow.promise);
      const creating = driver.create("a", {});
      const getting = driver.get("a");
      const mounting = driver.mount("a", "id");
      await settle();
      expect(backend.ops()).toEqual(["create a"]);
      slow.resolve();
      await creating;
      expect((await getting).name).toBe("a");
      expect(await mounting).toBe("/fake/a");
      expect(backend.ops()).toEqual(["create a", "inspect a", "inspect a", "prepareMount a"]);
    });

    test("Remove racing Mount: whichever comes first wins, and a mounted volume is never removed", async () => {
      backend.volumes.set("v", { options: {} });
      const slow = deferred();
      backend.gates.set("prepareMount", async () => slow.promise);
      const mounting = driver.mount("v", "id");
      const removing = driver.remove("v");
      await settle();
      expect(backend.ops()).toEqual(["inspect v", "prepareMount v"]);
      slow.resolve();
      expect(await mounting).toBe("/fake/v");
      await expectPluginError(removing, "VOLUME_IN_USE");
      expect(backend.volumes.has("v")).toBe(true);
    });
  });

  describe("deadlines", () => {
    test("an operation stuck in the backend fails with TIMEOUT", async () => {
      driver = new Driver(backend, refs, { timeoutMs: 50 });
      backend.gates.set("create", deferred());
      const error = await expectPluginError(driver.create("a", {}), "TIMEOUT");
      expect(error.volume).toBe("a");
      expect(error.message).toContain("create");
    });

    test("the deadline covers the wait for the volume's lock", async () => {
      driver = new Driver(backend, refs, { timeoutMs: 80 });
      backend.volumes.set("a", { options: {} });
      const stuck = deferred();
      backend.gates.set("create", stuck);
      const creating = driver.create("a", {}).catch((e: unknown) => e);
      await sleep(40);
      // Get itself is instant; only the lock wait can make it miss its deadline.
      const started = performance.now();
      const error = await expectPluginError(driver.get("a"), "TIMEOUT");
      expect(performance.now() - started).toBeGreaterThanOrEqual(70);
      expect(error.message).toContain("get");
      expect(backend.ops()).toEqual(["create a"]);
      expect(((await creating) as PluginError).code).toBe("TIMEOUT");
      // Another volume is not held up.
      backend.volumes.set("b", { options: {} });
      expect((await driver.get("b")).name).toBe("b");
    });

    test("List fails with TIMEOUT when the backend hangs", async () => {
      driver = new Driver(backend, refs, { timeoutMs: 30 });
      backend.gates.set("list", deferred());
      await expectPluginError(driver.list(), "TIMEOUT");
    });

    test("a timeout of 0 disables deadlines", async () => {
      driver = new Driver(backend, refs, { timeoutMs: 0 });
      backend.gates.set("create", async () => sleep(60));
      await driver.create("a", {});
      expect(backend.volumes.has("a")).toBe(true);
    });

    // When Mount times out the engine is told it failed and never sends the matching Unmount;
    // if the late task still recorded the mount, the volume would stay "in use" until reboot.
    test("a Mount that timed out in the backend does not record a mount later", async () => {
      driver = new Driver(backend, refs, { timeoutMs: 50 });
      backend.volumes.set("v", { options: {} });
      const slow = deferred();
      backend.gates.set("prepareMount", async () => slow.promise);
      await expectPluginError(driver.mount("v", "engine-id"), "TIMEOUT");
      slow.resolve();
      await settle();
      expect(refs.count("v")).toBe(0);
      backend.gates.clear();
      await driver.remove("v");
      expect(backend.volumes.has("v")).toBe(false);
    });

    test("a Mount that timed out waiting for the lock does not record a mount once it gets the lock", async () => {
      driver = new Driver(backend, refs, { timeoutMs: 50 });
      backend.volumes.set("v", { options: {} });
      const stuck = deferred();
      backend.gates.set("create", stuck);
      const creating = driver.create("v", {}).catch(() => {});
      await expectPluginError(driver.mount("v", "engine-id"), "TIMEOUT");
      await creating;
      stuck.resolve();
      await settle();
      expect(refs.count("v")).toBe(0);
      expect(driver.mounts().size).toBe(0);
    });
  });
});

describe("Driver with mount claims (two hosts sharing one backend)", () => {
  let dir: string;
  let backend: FakeBackend;
  const open: { refs: MountRefs; claims: Claims }[] = [];

  async function host(id: string, stateDir = join(dir, id)): Promise<{ driver: Driver; refs: MountRefs; claims: Claims }> {
    const refs = MountRefs.open({ stateDir, bootId: "claims-boot" });
    const claims = new Claims({ dir: join(dir, "claims"), hostId: id, leaseTimeoutMs: 60_000 });
    const driver = new Driver(backend, refs, { timeoutMs: 5000, claims });
    await driver.startClaims();
    open.push({ refs, claims });
    return { driver, refs, claims };
  }
  const claimsOf = (id: string) => readdir(join(dir, "claims", "mounts", id));

  beforeEach(async () => {
    dir = await makeTempDir("dqp-driver-claims-");
    backend = new FakeBackend();
    backend.volumes.set("v", { options: {} });
  });
  afterEach(async () => {
    for (const { refs, claims } of open.splice(0)) {
      await claims.stop();
      refs.close();
    }
    await removeTempDir(dir);
  });

  test("the first Mount on a host claims the volume, the last Unmount drops the claim", async () => {
    const a = await host("host-a");
    await a.driver.mount("v", "one");
    await a.driver.mount("v", "two");
    expect(await claimsOf("host-a")).toEqual(["v"]);
    await a.driver.unmount("v", "one");
    expect(await claimsOf("host-a")).toEqual(["v"]);
    await a.driver.unmount("v", "two");
    expect(await claimsOf("host-a")).toEqual([]);
  });

  test("Remove on B is refused while A has the volume mounted, and the backend is never asked to delete", async () => {
    const a = await host("host-a");
    const b = await host("host-b");
    await a.driver.mount("v", "one");
    const refused = await expectPluginError(b.driver.remove("v"), "VOLUME_IN_USE");
    expect(refused.message).toContain("host-a");
    expect(backend.ops()).not.toContain("remove v");
    await a.driver.unmount("v", "one");
    await b.driver.remove("v");
    expect(backend.ops()).toContain("remove v");
  });

  test("a Mount whose claim cannot be published is refused and leaves no mount recorded", async () => {
    const a = await host("host-a");
    await rm(join(dir, "claims", "mounts", "host-a"), { recursive: true });
    await writeFile(join(dir, "claims", "mounts", "host-a"), "not a directory");
    const refused = await expectPluginError(a.driver.mount("v", "one"), "BACKEND_FAILED");
    expect(refused.message).toContain("cannot record the mount");
    expect(a.refs.count("v")).toBe(0);
  });

  test("after a restart the host re-claims the mounts it recorded, before serving", async () => {
    const first = await host("host-a", join(dir, "state-a"));
    await first.driver.mount("v", "one");
    // Crash: the claim is lost from the storage (say, deleted by hand), the mount state stays.
    await first.claims.stop();
    first.refs.close();
    open.splice(0);
    await rm(join(dir, "claims", "mounts", "host-a", "v"));
    const again = await host("host-a", join(dir, "state-a"));
    expect(again.refs.count("v")).toBe(1);
    expect(await claimsOf("host-a")).toEqual(["v"]);
  });
});
