import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { QuobyteBackend } from "../../../src/backends/quobyte/quobyte-backend.ts";
import { Driver } from "../../../src/core/driver.ts";
import { MountRefs } from "../../../src/core/mount-refs.ts";
import { MountMonitor } from "../../../src/system/mount-health.ts";
import { DEFAULT_USER } from "../../support/fake-quobyte.ts";
import { expectPluginError } from "../core/helpers.ts";
import { makeQuobyteHarness, type QuobyteHarness } from "./quobyte-harness.ts";

let h: QuobyteHarness;
let backend: QuobyteBackend;
let refs: MountRefs;
let driver: Driver;

async function start(overrides: Parameters<QuobyteHarness["newBackend"]>[0] = {}): Promise<void> {
  backend = h.newBackend(overrides);
  await backend.init();
  refs = MountRefs.open({ stateDir: h.stateDir, bootId: "quobyte-test" });
  driver = new Driver(backend, refs, { timeoutMs: 10_000 });
}

beforeEach(async () => {
  h = await makeQuobyteHarness();
  await start();
});
afterEach(async () => {
  refs.close();
  await backend.close();
  await h.cleanup();
});

const calls = (method: string) => h.fake.log.filter((entry) => entry.method === method);
const tenantId = () => h.fake.tenants[0]?.id ?? "";

describe("create", () => {
  test("sends createVolume with the tenant's UUID, owner, configuration and mode", async () => {
    await driver.create("data", { user: "alice", group: "staff", mode: "0750", configuration_name: "BASE" });
    const { label, ...params } = calls("createVolume")[0]?.params ?? {};
    // The volume's Docker options travel with it, so that every host can serve it.
    expect(label).toEqual([{ name: "docker-quobyte-plugin", value: expect.any(String) }]);
    const value = JSON.parse((label as { value: string }[])[0]?.value ?? "");
    expect(value).toMatchObject({ version: 1, home: tenantId(), onRemove: "delete", options: { user: "alice", mode: "0750" } });
    expect(params).toEqual({
      name: "data",
      tenant_id: tenantId(),
      root_user_id: "alice",
      root_group_id: "staff",
      configuration_name: "BASE",
      access_mode: 750,
      retry: "INTERACTIVE",
    });
    const [volume] = h.fake.volumes();
    expect(volume?.name).toBe("data");
    const record = await driver.get("data");
    expect(record.status).toMatchObject({ backend: "quobyte", uuid: volume?.uuid, tenant: tenantId() });
  });

  test("nothing is sent for a bad name or bad options", async () => {
    const before = h.fake.log.length;
    await expectPluginError(driver.create("../x", {}), "INVALID_NAME");
    for (const opts of [{ size: "lots" }, { mode: "888" }, { on_remove: "shred" }, { fixed_user: "a/b" }, { colour: "blue" }]) {
      await expectPluginError(driver.create("v", opts), "INVALID_OPTION");
    }
    expect(h.fake.log.length).toBe(before);
    expect(h.fake.volumes()).toEqual([]);
  });

  test("size sets a LOGICAL_DISK_SPACE quota on the volume", async () => {
    await driver.create("big", { size: "10G" });
    const uuid = h.fake.volumes()[0]?.uuid;
    expect(calls("setQuota")[0]?.params?.quotas).toEqual([
      { consumer: [{ type: "VOLUME", identifier: uuid }], limits: [{ type: "LOGICAL_DISK_SPACE", value: 10 * 2 ** 30 }] },
    ]);
    expect(h.fake.volumes()[0]?.quotaBytes).toBe(10 * 2 ** 30);
  });

  test("a failed quota deletes the volume just created and returns the error", async () => {
    h.fake.injectFault("setQuota", { kind: "rpc-error", message: "QUOTA_EXCEEDED/POSIX_ERROR_NONE: quota over-subscription /" });
    await expectPluginError(driver.create("big", { size: "10T" }), "BACKEND_FAILED");
    expect(calls("deleteVolume")).toHaveLength(1);
    expect(h.fake.volumes()).toEqual([]);
    expect((await driver.list()).map((v) => v.name)).toEqual([]);
  });

  test("is idempotent when the volume already exists in Quobyte (another host made it)", async () => {
    const existing = h.fake.addVolume({ name: "shared", tenantId: tenantId() });
    await driver.create("shared", { size: "1G" });
    expect(calls("resolveVolumeName")).toHaveLength(1);
    expect((await driver.get("shared")).status.uuid).toBe(existing.uuid);
    expect(h.fake.volumes()).toHaveLength(1);
  });

  test("a volume of another tenant given by name", async () => {
    const other = h.fake.addTenant({ name: "Other" });
    await driver.create("elsewhere", { tenant_id: "Other" });
    expect(calls("createVolume")[0]?.params?.tenant_id).toBe(other.id);
    await expectPluginError(driver.create("nowhere", { tenant_id: "No Such Tenant" }), "INVALID_OPTION");
  });

  test("waits for the volume to appear in the mount, bounded", async () => {
    await h.cleanup();
    h = await makeQuobyteHarness({ mountDelayMs: 300 });
    refs.close();
    await start();
    await driver.create("slow", {});
    expect((await stat(join(h.mount, "slow"))).isDirectory()).toBe(true);

    await h.cleanup();
    h = await makeQuobyteHarness({ mountDelayMs: Number.POSITIVE_INFINITY });
    refs.close();
    await start({ createWaitMs: 300 });
    const started = Date.now();
    await expectPluginError(driver.create("never", {}), "BACKEND_FAILED");
    expect(Date.now() - started).toBeLessThan(3000);
    // The API volume exists (the next Create adopts it), but nothing hands out its path.
    expect(h.fake.volumes().map((v) => v.name)).toEqual(["never"]);
    await expectPluginError(driver.mount("never", "1".repeat(64)), "BACKEND_FAILED");
    expect(driver.mounts().size).toBe(0);
  });
});

describe("start", () => {
  test("an unknown tenant fails at start with a clear error", async () => {
    const wrong = h.newBackend({ tenant: "NO-DEFAULT-CHANGE-ME" });
    const error = await wrong.init().catch((e: unknown) => e as Error);
    expect(String(error)).toContain("NO-DEFAULT-CHANGE-ME");
    expect(String(error)).toContain("QUOBYTE_TENANT_ID");
  });

  test("an unreachable API does not keep the plugin from starting", async () => {
    await h.fake.stop();
    await h.newBackend().init();
  });
});

describe("remove", () => {
  test("resolves in the volume's own tenant, then deletes", async () => {
    const other = h.fake.addTenant({ name: "Other" });
    await driver.create("v", { tenant_id: other.id });
    await driver.remove("v");
    expect(calls("resolveVolumeName").at(-1)?.params).toMatchObject({ volume_name: "v", tenant_domain: other.id });
    expect(calls("deleteVolume")).toHaveLength(1);
    expect(h.fake.volumes()).toEqual([]);
  });

  test("on_remove=erase erases, on_remove=keep only forgets", async () => {
    await driver.create("erased", { on_remove: "erase" });
    await driver.create("kept", { on_remove: "keep" });
    await driver.remove("erased");
    await driver.remove("kept");
    expect(calls("eraseVolume")).toHaveLength(1);
    expect(calls("deleteVolume")).toHaveLength(0);
    expect(h.fake.volumes().map((v) => v.name)).toEqual(["kept"]);
    expect(await driver.list()).toEqual([]);
  });

  test("a volume deleted behind our back is removed successfully", async () => {
    await driver.create("gone", {});
    h.fake.reset();
    await driver.remove("gone");
    await expectPluginError(driver.get("gone"), "VOLUME_NOT_FOUND");
  });

  test("a volume whose name now belongs to a volume made by something else is refused, not deleted", async () => {
    await driver.create("reused", {});
    h.fake.reset();
    const stranger = h.fake.addVolume({ name: "reused", tenantId: tenantId() });
    const error = await expectPluginError(driver.remove("reused"), "NOT_MANAGED");
    expect(error.message).toContain("not created by this plugin");
    expect(h.fake.volumes().map((v) => v.uuid)).toEqual([stranger.uuid]);
    expect(calls("deleteVolume")).toHaveLength(0);
  });

  test("is refused while mounted on this host", async () => {
    await driver.create("busy", {});
    await driver.mount("busy", "a".repeat(64));
    await expectPluginError(driver.remove("busy"), "VOLUME_IN_USE");
    expect(calls("deleteVolume")).toHaveLength(0);
  });
});

describe("mount", () => {
  test("returns <mount>/<volume>, or the fixed-user path", async () => {
    await driver.create("plain", {});
    await driver.create("mapped", { fixed_user: "alice", fixed_group: "staff" });
    await driver.create("useronly", { fixed_user: "bob" });
    expect(await driver.mount("plain", "1".repeat(64))).toBe(join(h.mount, "plain"));
    expect(await driver.mount("mapped", "2".repeat(64))).toBe(join(h.mount, "alice#staff@mapped"));
    expect(await driver.mount("useronly", "3".repeat(64))).toBe(join(h.mount, "bob@useronly"));
    expect((await driver.get("mapped")).mountpoint).toBe(join(h.mount, "alice#staff@mapped"));
  });

  test("with --mount-check quobyte, a plain directory is never handed out", async () => {
    await driver.create("v", {});
    refs.close();
    await backend.close();
    await start({ monitor: new MountMonitor(h.mount, "quobyte", 2000) });
    const error = await driver.mount("v", "1".repeat(64)).catch((e: unknown) => e as Error);
    expect(String(error)).toContain("nothing is mounted");
    expect(driver.mounts().size).toBe(0);
  });

  test("with --mount-check quobyte, Create of an existing volume is refused too while the mount is not live", async () => {
    await driver.create("v", {});
    refs.close();
    await backend.close();
    await start({ monitor: new MountMonitor(h.mount, "quobyte", 2000) });
    const error = await driver.create("v", {}).catch((e: unknown) => e as Error);
    expect(String(error)).toContain("nothing is mounted");
  });
});

describe("while the API is down", () => {
  test("Get and List answer from local metadata", async () => {
    await driver.create("v", {});
    h.fake.injectFault("*", { kind: "hang" }, Number.POSITIVE_INFINITY);
    const started = Date.now();
    expect((await driver.get("v")).name).toBe("v");
    expect((await driver.list()).map((v) => v.name)).toEqual(["v"]);
    expect(Date.now() - started).toBeLessThan(1500);
  });

  test("Create fails with a clear error instead of hanging", async () => {
    await h.fake.stop();
    await expectPluginError(driver.create("v", {}), "BACKEND_FAILED");
  });
});

describe("status and listing", () => {
  test("Get's Status carries quota and usage, as fresh as the cache TTL", async () => {
    refs.close();
    await backend.close();
    await start({ cacheTtlMs: 300 });
    await driver.create("v", { size: "1G" });
    const uuid = h.fake.volumes()[0]?.uuid ?? "";
    h.fake.updateVolume(uuid, { usedBytes: 12345 });
    await Bun.sleep(350);
    const status = (await driver.get("v")).status;
    expect(status).toMatchObject({ quotaBytes: 2 ** 30, usedBytes: 12345, mount: "live" });
  });

  test("--list-all also lists the tenant's other volumes", async () => {
    h.fake.addVolume({ name: "foreign", tenantId: tenantId() });
    await driver.create("mine", {});
    expect((await driver.list()).map((v) => v.name)).toEqual(["mine"]);
    refs.close();
    await backend.close();
    await start({ listAll: true });
    expect((await driver.list()).map((v) => v.name).sort()).toEqual(["foreign", "mine"]);
  });
});

describe("secrets", () => {
  test("the password appears in no log line, Status or state file", async () => {
    await driver.create("v", { size: "1G" });
    await driver.mount("v", "1".repeat(64));
    await driver.get("v");
    await driver.unmount("v", "1".repeat(64));
    await driver.remove("v");
    await driver.create("w", {});
    const status = JSON.stringify(await driver.get("w"));
    const stateFiles = await readdir(h.stateDir);
    const state = await Promise.all(stateFiles.map((f) => readFile(join(h.stateDir, f), "utf8").catch(() => "")));
    const basic = Buffer.from(`${DEFAULT_USER.name}:${DEFAULT_USER.password}`).toString("base64");
    for (const text of [h.logs.join("\n"), status, state.join("\n")]) {
      expect(text).not.toContain(DEFAULT_USER.password);
      expect(text).not.toContain(basic);
    }
    expect(state.join("\n")).toContain('"name":"w"');
    expect((await stat(join(h.stateDir, "quobyte-catalog.json"))).mode & 0o777).toBe(0o600);
  });
});

describe("records of older versions", () => {
  test("move onto the API at start: labels for live volumes, interrupted Removes finished, records deleted", async () => {
    refs.close();
    await backend.close();
    const live = h.fake.addVolume({ name: "old", tenantId: tenantId() });
    const half = h.fake.addVolume({ name: "half", tenantId: tenantId() });
    const dir = join(h.stateDir, "quobyte-volumes");
    await mkdir(dir, { recursive: true });
    const record = (uuid: string, extra: object = {}) =>
      JSON.stringify({ version: 1, uuid, tenantId: tenantId(), createdAt: "2025-01-01T00:00:00.000Z", options: { size: "1G" }, onRemove: "delete", ...extra });
    await writeFile(join(dir, "old"), record(live.uuid, { fixedUser: "alice" }));
    await writeFile(join(dir, "half"), record(half.uuid, { state: "removing" }));
    await start();
    expect(h.fake.volumes().map((v) => v.name)).toEqual(["old"]);
    expect((await driver.list()).map((v) => v.name)).toEqual(["old"]);
    const got = await driver.get("old");
    expect(got.status).toMatchObject({ managed: true, options: { size: "1G" } });
    expect(got.mountpoint).toBe(join(h.mount, "alice@old"));
    expect(existsSync(dir)).toBe(false);
  });
});

describe("the cache file across restarts", () => {
  test("after a clean stop it answers at once without the API; after a crash the first request asks", async () => {
    await driver.create("v", {});
    refs.close();
    await backend.close();
    h.fake.resetCounts();
    await start();
    expect((await driver.list()).map((v) => v.name)).toEqual(["v"]);
    expect((await driver.get("v")).name).toBe("v");
    expect(h.fake.methodCounts()).toEqual({});

    // A crash: no clean stop. Meanwhile the volume went away (a Remove cut off after deleteVolume).
    const crashed = backend;
    refs.close();
    h.fake.reset();
    await start();
    await expectPluginError(driver.get("v"), "VOLUME_NOT_FOUND");
    expect((await driver.list()).map((v) => v.name)).toEqual([]);
    await crashed.close();
  });
});
