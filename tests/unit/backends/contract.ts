/**
 * The contract every Backend must keep, checked through the real Driver and a real
 * MountRefs (SQLite in a temp state dir), i.e. along the path the plugin serves.
 *
 * Usage (one file per backend):
 *
 *   runBackendContract({ name: "posix", make: async () => ({ backend, root, cleanup }) });
 *
 * `make` returns a backend that has NOT been initialised yet (the contract calls init(),
 * as the service does), the directory its volumes live in (the tree is snapshotted to
 * prove that refused operations leave no trace), and a cleanup. `reopen`, when given,
 * returns a second, fresh, uninitialised instance over the same storage (a restarted
 * plugin); without it the restart case reuses the first instance.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { lstat, readdir, writeFile, readFile } from "node:fs/promises";
import { dirname, isAbsolute, join } from "node:path";
import { Driver } from "../../../src/core/driver.ts";
import { PluginError } from "../../../src/core/errors.ts";
import { MountRefs } from "../../../src/core/mount-refs.ts";
import type { Backend } from "../../../src/core/types.ts";
import { makeTempDir, removeTempDir } from "../../support/tmp.ts";
import { expectPluginError, sleep } from "../core/helpers.ts";
import { lstatOrUndefined, snapshotTree } from "./fs-snapshot.ts";

export interface BackendUnderTest {
  backend: Backend;
  /** The directory holding the volumes. */
  root: string;
  cleanup: () => Promise<void>;
  /** A fresh instance over the same storage, as after a plugin restart. */
  reopen?: () => Promise<Backend>;
}

export interface BackendContractOptions {
  name: string;
  make: () => Promise<BackendUnderTest>;
  /** Names of contract cases this backend opts out of (must be real case names). */
  skip?: string[];
  /**
   * Options the backend accepts, used to check that Create of an existing volume with
   * different options changes nothing. Defaults to {}.
   */
  validOptions?: Record<string, string>;
}

const BOOT_ID = "contract-boot-id";
/** Mount IDs as the engine sends them: 64 hex characters. */
const mountId = (): string => randomBytes(32).toString("hex");

export const INVALID_NAMES: readonly { label: string; value: unknown }[] = [
  { label: "empty", value: "" },
  { label: '"."', value: "." },
  { label: '".."', value: ".." },
  { label: '"a/b"', value: "a/b" },
  { label: '"../x"', value: "../x" },
  { label: "NUL inside", value: "x\u0000y" },
  { label: "newline inside", value: "x\ny" },
  { label: "256 ASCII bytes", value: "a".repeat(256) },
  { label: "256 bytes of 2-byte characters", value: "é".repeat(128) },
  { label: "a number", value: 42 },
  { label: "null", value: null },
  { label: "undefined", value: undefined },
  { label: "an object", value: { name: "x" } },
  { label: "an array", value: ["x"] },
];

export function runBackendContract(options: BackendContractOptions): void {
  const skip = new Set(options.skip ?? []);
  const known = new Set<string>();
  const validOptions = options.validOptions ?? {};

  describe(`backend contract: ${options.name}`, () => {
    let sut: BackendUnderTest;
    let backend: Backend;
    let stateDir: string;
    let refs: MountRefs;
    let driver: Driver;
    const openRefs = new Set<MountRefs>();
    const openBackends = new Set<Backend>();

    function openDriver(b: Backend): Driver {
      refs = MountRefs.open({ stateDir, bootId: BOOT_ID });
      openRefs.add(refs);
      return new Driver(b, refs, { timeoutMs: 30_000 });
    }

    beforeEach(async () => {
      sut = await options.make();
      backend = sut.backend;
      openBackends.add(backend);
      await backend.init();
      stateDir = await makeTempDir("dqp-contract-state-");
      driver = openDriver(backend);
    });

    afterEach(async () => {
      for (const r of openRefs) r.close();
      openRefs.clear();
      for (const b of openBackends) await b.close();
      openBackends.clear();
      await sut.cleanup();
      await removeTempDir(stateDir);
    });

    function contractTest(name: string, fn: () => Promise<void>, timeout?: number): void {
      known.add(name);
      if (skip.has(name)) test.skip(name, fn);
      else test(name, fn, timeout);
    }

    async function names(): Promise<string[]> {
      return (await driver.list()).map((v) => v.name).sort();
    }

    /** Everything a refused operation must leave as it was. */
    async function everything(): Promise<unknown> {
      return {
        root: await snapshotTree(sut.root),
        parent: await snapshotTree(dirname(sut.root), { recursive: false }),
        list: await driver.list(),
        mounts: [...driver.mounts()],
      };
    }

    contractTest("a volume goes through create, get, list, mount, path, unmount and remove", async () => {
      await driver.create("lifecycle", {});

      const record = await driver.get("lifecycle");
      expect(record.name).toBe("lifecycle");
      expect(isAbsolute(record.mountpoint)).toBe(true);
      expect(record.status.mounts).toBe(0);
      expect(await driver.list()).toEqual([{ name: "lifecycle", mountpoint: record.mountpoint }]);

      const id = mountId();
      const path = await driver.mount("lifecycle", id);
      expect(path).toBe(record.mountpoint);
      expect(await driver.path("lifecycle")).toBe(path);
      expect((await driver.get("lifecycle")).status.mounts).toBe(1);
      await writeFile(join(path, "data.txt"), "hello");

      await driver.unmount("lifecycle", id);
      expect((await driver.get("lifecycle")).status.mounts).toBe(0);
      await expectPluginError(driver.path("lifecycle"), "NOT_MOUNTED");
      expect(await readFile(join(record.mountpoint, "data.txt"), "utf8")).toBe("hello");

      await driver.remove("lifecycle");
      await expectPluginError(driver.get("lifecycle"), "VOLUME_NOT_FOUND");
      await expectPluginError(driver.path("lifecycle"), "VOLUME_NOT_FOUND");
      expect(await driver.list()).toEqual([]);
    });

    contractTest("Create of an existing volume succeeds and changes nothing, with the same or other options", async () => {
      await driver.create("twice", {});
      const path = await driver.mount("twice", "m1");
      await writeFile(join(path, "keep.txt"), "kept");
      await driver.unmount("twice", "m1");
      const before = await driver.get("twice");

      await driver.create("twice", {});
      expect(await driver.get("twice")).toEqual(before);
      await driver.create("twice", validOptions);
      expect(await driver.get("twice")).toEqual(before);

      expect(await names()).toEqual(["twice"]);
      expect(await readFile(join(before.mountpoint, "keep.txt"), "utf8")).toBe("kept");
    });

    contractTest("Remove of an unknown volume succeeds, also twice in a row, and creates nothing", async () => {
      await driver.create("other", {});
      const before = await everything();
      await driver.remove("never-created");
      await driver.remove("never-created");
      expect(await everything()).toEqual(before);

      await driver.remove("other");
      await driver.remove("other");
      expect(await driver.list()).toEqual([]);
    });

    contractTest("Get, Mount and Path of an unknown volume fail with VOLUME_NOT_FOUND and create nothing", async () => {
      await driver.create("present", {});
      const before = await everything();

      const error = await expectPluginError(driver.get("ghost"), "VOLUME_NOT_FOUND");
      expect(error.message).toContain("ghost");
      await expectPluginError(driver.mount("ghost", mountId()), "VOLUME_NOT_FOUND");
      await expectPluginError(driver.path("ghost"), "VOLUME_NOT_FOUND");
      await expectPluginError(driver.get("ghost"), "VOLUME_NOT_FOUND");

      expect(await everything()).toEqual(before);
      expect(await lstatOrUndefined(join(sut.root, "ghost"))).toBeUndefined();
      expect(driver.mounts().size).toBe(0);
    });

    contractTest("CreatedAt is an RFC 3339 time taken at creation", async () => {
      const start = Date.now();
      await driver.create("dated", {});
      const end = Date.now();
      const { createdAt } = await driver.get("dated");
      expect(typeof createdAt).toBe("string");
      const text = createdAt as string;
      expect(text).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/);
      const at = Date.parse(text);
      expect(Number.isFinite(at)).toBe(true);
      // Remote storage may stamp the time itself: allow clock skew, but not a made-up time.
      expect(at).toBeGreaterThanOrEqual(start - 60_000);
      expect(at).toBeLessThanOrEqual(end + 60_000);
      // It is the creation time: stable across Gets and repeated Creates.
      await sleep(5);
      await driver.create("dated", {});
      expect((await driver.get("dated")).createdAt).toBe(text);
    });

    contractTest("List is empty at first and names each volume exactly once", async () => {
      expect(await driver.list()).toEqual([]);
      for (const name of ["alpha", "beta", "gamma", "alpha", "beta"]) await driver.create(name, {});
      await driver.mount("alpha", "m");
      const list = await driver.list();
      expect(list.map((v) => v.name).sort()).toEqual(["alpha", "beta", "gamma"]);
      for (const entry of list) {
        expect(entry.mountpoint).toBe((await driver.get(entry.name)).mountpoint);
      }
      await driver.unmount("alpha", "m");
      await driver.remove("beta");
      expect(await names()).toEqual(["alpha", "gamma"]);
    });

    contractTest("Mount returns an absolute path to an existing directory, the one Get and Path report", async () => {
      await driver.create("mnt", {});
      const path = await driver.mount("mnt", mountId());
      expect(isAbsolute(path)).toBe(true);
      const info = await lstat(path);
      expect(info.isDirectory()).toBe(true);
      expect(info.isSymbolicLink()).toBe(false);
      expect(path).toBe((await driver.get("mnt")).mountpoint);
      expect(await driver.path("mnt")).toBe(path);
      // The directory is usable.
      await writeFile(join(path, "f"), "x");
      expect(await readdir(path)).toContain("f");
    });

    contractTest("the same mount ID mounted twice needs two Unmounts before Remove is allowed", async () => {
      await driver.create("cp", {});
      const id = mountId();
      await driver.mount("cp", id);
      await driver.mount("cp", id);
      expect((await driver.get("cp")).status.mounts).toBe(2);

      await driver.unmount("cp", id);
      expect((await driver.get("cp")).status.mounts).toBe(1);
      const error = await expectPluginError(driver.remove("cp"), "VOLUME_IN_USE");
      expect(error.message).toContain("cp");
      expect(await driver.path("cp")).toBe((await driver.get("cp")).mountpoint);

      await driver.unmount("cp", id);
      expect((await driver.get("cp")).status.mounts).toBe(0);
      await driver.remove("cp");
      expect(await driver.list()).toEqual([]);
    });

    contractTest("Unmount of an unknown mount ID succeeds and changes no count", async () => {
      await driver.create("um", {});
      const id = mountId();
      await driver.mount("um", id);
      await driver.unmount("um", mountId());
      await driver.unmount("never-created", mountId());
      expect((await driver.get("um")).status.mounts).toBe(1);
      expect([...driver.mounts()]).toEqual([["um", 1]]);
      await driver.unmount("um", id);
      await driver.unmount("um", id); // sent twice: still fine
      expect((await driver.get("um")).status.mounts).toBe(0);
      expect(driver.mounts().size).toBe(0);
    });

    contractTest("Remove of a mounted volume fails with VOLUME_IN_USE and the data survives", async () => {
      await driver.create("busy", {});
      const a = mountId();
      const b = mountId();
      const path = await driver.mount("busy", a);
      await driver.mount("busy", b);
      await writeFile(join(path, "precious"), "data");

      await expectPluginError(driver.remove("busy"), "VOLUME_IN_USE");
      await driver.unmount("busy", a);
      await expectPluginError(driver.remove("busy"), "VOLUME_IN_USE");

      expect(await names()).toEqual(["busy"]);
      expect((await driver.get("busy")).status.mounts).toBe(1);
      expect(await readFile(join(path, "precious"), "utf8")).toBe("data");
      expect(await driver.path("busy")).toBe(path);
    });

    contractTest("Remove deletes the data: a new volume of the same name starts empty", async () => {
      await driver.create("gone", {});
      const id = mountId();
      const path = await driver.mount("gone", id);
      await writeFile(join(path, "old.txt"), "old");
      await driver.unmount("gone", id);
      await driver.remove("gone");

      expect(await lstatOrUndefined(join(path, "old.txt"))).toBeUndefined();
      await expectPluginError(driver.get("gone"), "VOLUME_NOT_FOUND");

      await driver.create("gone", {});
      const again = await driver.mount("gone", mountId());
      expect(await readdir(again)).toEqual([]);
    });

    contractTest("invalid names are refused with INVALID_NAME by every operation and leave no trace", async () => {
      await driver.create("bystander", {});
      await driver.mount("bystander", "m");
      const before = await everything();
      for (const { label, value } of INVALID_NAMES) {
        const operations: [string, () => Promise<unknown>][] = [
          ["create", () => driver.create(value, {})],
          ["create with options", () => driver.create(value, validOptions)],
          ["get", () => driver.get(value)],
          ["mount", () => driver.mount(value, mountId())],
          ["path", () => driver.path(value)],
          ["unmount", () => driver.unmount(value, mountId())],
          ["remove", () => driver.remove(value)],
        ];
        for (const [op, run] of operations) {
          let error: unknown;
          try {
            await run();
          } catch (caught) {
            error = caught;
          }
          if (!(error instanceof PluginError) || error.code !== "INVALID_NAME") {
            throw new Error(`${op} of ${label} should fail with INVALID_NAME, got ${String(error)}`);
          }
        }
      }
      expect(await everything()).toEqual(before);
    });

    contractTest("a name of exactly 255 UTF-8 bytes made of multi-byte characters works", async () => {
      const accented = `${"é".repeat(127)}a`;
      const whales = `${"🐳".repeat(63)}abc`;
      for (const name of [accented, whales]) {
        expect(new TextEncoder().encode(name).length).toBe(255);
        await exerciseName(name);
      }
    });

    contractTest("unicode names and 64-hex names work", async () => {
      await exerciseName("données-日本語-🐳-Ωμέγα");
      await exerciseName(randomBytes(32).toString("hex"));
      await exerciseName("UPPER-lower_under.dot-1");
    });

    async function exerciseName(name: string): Promise<void> {
      await driver.create(name, {});
      expect(await names()).toContain(name);
      const record = await driver.get(name);
      expect(record.name).toBe(name);
      const id = mountId();
      const path = await driver.mount(name, id);
      expect(path).toBe(record.mountpoint);
      expect((await lstat(path)).isDirectory()).toBe(true);
      await writeFile(join(path, "f"), name);
      expect(await driver.path(name)).toBe(path);
      await driver.unmount(name, id);
      await driver.remove(name);
      expect(await names()).not.toContain(name);
      await expectPluginError(driver.get(name), "VOLUME_NOT_FOUND");
      expect(await lstatOrUndefined(path)).toBeUndefined();
    }

    contractTest("an unknown option is refused with INVALID_OPTION naming it and the allowed ones, creating nothing", async () => {
      const before = await everything();
      const error = await expectPluginError(
        driver.create("opt", { ...validOptions, "no-such-option": "1" }),
        "INVALID_OPTION",
      );
      expect(error.message).toContain('"no-such-option"');
      for (const allowed of backend.optionNames) expect(error.message).toContain(allowed);
      expect(await everything()).toEqual(before);
      await expectPluginError(driver.get("opt"), "VOLUME_NOT_FOUND");
    });

    contractTest("a non-string option value or non-object options are refused with INVALID_OPTION, creating nothing", async () => {
      const before = await everything();
      const key = backend.optionNames[0] ?? "no-such-option";
      for (const value of [1, true, null, { nested: "x" }, ["x"]]) {
        const error = await expectPluginError(driver.create("opt", { [key]: value }), "INVALID_OPTION");
        expect(error.message).toContain(key);
      }
      for (const opts of ["mode=0700", 7, ["a"]]) {
        await expectPluginError(driver.create("opt", opts), "INVALID_OPTION");
      }
      expect(await everything()).toEqual(before);
    });

    contractTest("20 concurrent Creates of one name all succeed and make one volume", async () => {
      const results = await Promise.allSettled(Array.from({ length: 20 }, () => driver.create("crowd", {})));
      expect(results.filter((r) => r.status === "rejected")).toEqual([]);
      expect(await driver.list()).toEqual([{ name: "crowd", mountpoint: (await driver.get("crowd")).mountpoint }]);
      const entries = (await readdir(sut.root)).filter((e) => !e.startsWith("."));
      expect(entries).toEqual(["crowd"]);
    });

    contractTest(
      "Remove racing Mount never removes a volume that ends up mounted",
      async () => {
        const outcomes = { mounted: 0, removed: 0 };
        for (let i = 0; i < 40; i++) {
          const name = `race-${i}`;
          await driver.create(name, {});
          const id = mountId();
          const mountFirst = i % 2 === 0;
          const later = <T>(op: () => Promise<T>): Promise<T> =>
            i % 4 < 2 ? op() : sleep(i % 3).then(op);
          let mounting: Promise<string>;
          let removing: Promise<void>;
          if (mountFirst) {
            mounting = driver.mount(name, id);
            removing = later(() => driver.remove(name));
          } else {
            removing = driver.remove(name);
            mounting = later(() => driver.mount(name, id));
          }
          const [mount, remove] = await Promise.all([settled(mounting), settled(removing)]);
          const recorded = driver.mounts().get(name) ?? 0;
          if (mount.status === "fulfilled") {
            outcomes.mounted++;
            expect(remove.status).toBe("rejected");
            expect(remove.status === "rejected" && (remove.reason as PluginError).code).toBe("VOLUME_IN_USE");
            expect(recorded).toBe(1);
            const record = await driver.get(name);
            expect(record.status.mounts).toBe(1);
            expect((await lstat(mount.value)).isDirectory()).toBe(true);
            await driver.unmount(name, id);
            await driver.remove(name);
          } else {
            outcomes.removed++;
            expect(remove.status).toBe("fulfilled");
            expect((mount.reason as PluginError).code).toBe("VOLUME_NOT_FOUND");
            expect(recorded).toBe(0);
            await expectPluginError(driver.get(name), "VOLUME_NOT_FOUND");
          }
        }
        // Both orders really happened, so both branches above were checked.
        expect(outcomes.mounted).toBeGreaterThan(0);
        expect(outcomes.removed).toBeGreaterThan(0);
        expect(await driver.list()).toEqual([]);
        expect(driver.mounts().size).toBe(0);
      },
      60_000,
    );

    contractTest("after a restart the volumes, mount counts and old mount IDs are still known", async () => {
      await driver.create("kept", {});
      await driver.create("other", {});
      const a = mountId();
      const b = mountId();
      const path = await driver.mount("kept", a);
      await driver.mount("kept", a);
      await driver.mount("other", b);
      await writeFile(join(path, "f"), "survives");

      // Stop: close the state database and the backend, as the service does.
      refs.close();
      openRefs.delete(refs);
      await backend.close();
      openBackends.delete(backend);

      const reopened = sut.reopen ? await sut.reopen() : backend;
      openBackends.add(reopened);
      await reopened.init();
      driver = openDriver(reopened);

      expect(await names()).toEqual(["kept", "other"]);
      expect((await driver.get("kept")).status.mounts).toBe(2);
      expect((await driver.get("other")).status.mounts).toBe(1);
      expect(await driver.path("kept")).toBe(path);
      expect(await readFile(join(path, "f"), "utf8")).toBe("survives");
      await expectPluginError(driver.remove("kept"), "VOLUME_IN_USE");

      await driver.unmount("kept", a);
      await expectPluginError(driver.remove("kept"), "VOLUME_IN_USE");
      await driver.unmount("kept", a);
      await driver.remove("kept");
      await driver.unmount("other", b);
      await driver.remove("other");
      expect(await driver.list()).toEqual([]);
      expect(driver.mounts().size).toBe(0);
    });

    test("the skip list names only real contract cases", () => {
      expect([...skip].filter((name) => !known.has(name))).toEqual([]);
    });
  });
}

function settled<T>(work: Promise<T>): Promise<PromiseSettledResult<T>> {
  return work.then(
    (value) => ({ status: "fulfilled", value }) as const,
    (reason: unknown) => ({ status: "rejected", reason }) as const,
  );
}
