import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { chmod, chown, lstat, mkdir, readdir, readFile, rename, rm, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PosixBackend } from "../../../src/backends/posix/posix-backend.ts";
import { Driver } from "../../../src/core/driver.ts";
import { MountRefs } from "../../../src/core/mount-refs.ts";
import { makeTempDir, removeTempDir } from "../../support/tmp.ts";
import { expectPluginError } from "../core/helpers.ts";
import { runBackendContract } from "./contract.ts";
import { lstatOrUndefined, snapshotTree } from "./fs-snapshot.ts";

const CONTROL = ".docker-quobyte-plugin";

runBackendContract({
  name: "posix",
  make: async () => {
    const dir = await makeTempDir("dqp-posix-contract-");
    const root = join(dir, "root");
    return {
      backend: new PosixBackend({ root, indexRefreshMs: 50 }),
      root,
      reopen: async () => new PosixBackend({ root }),
      cleanup: () => removeTempDir(dir),
    };
  },
  validOptions: { user: "nobody", group: "nogroup", mode: "0700" },
});

runBackendContract({
  name: "posix --scope global (metadata read through to the shared root)",
  make: async () => {
    const dir = await makeTempDir("dqp-posix-shared-");
    const root = join(dir, "root");
    return {
      backend: new PosixBackend({ root, indexRefreshMs: 50, scope: "global" }),
      root,
      reopen: async () => new PosixBackend({ root, scope: "global" }),
      cleanup: () => removeTempDir(dir),
    };
  },
  validOptions: { user: "nobody", group: "nogroup", mode: "0700" },
});

/** A posix backend over `<tmp>/root`, with a driver over a real MountRefs, and an outside dir. */
interface PosixHarness {
  dir: string;
  root: string;
  outside: string;
  backend: PosixBackend;
  driver: Driver;
  metaFile(name: string): string;
  /** Another initialised backend on the same root (another host sharing the storage). */
  another(): Promise<PosixBackend>;
  close(): Promise<void>;
}

async function makeHarness(): Promise<PosixHarness> {
  const dir = await makeTempDir("dqp-posix-");
  const root = join(dir, "root");
  const outside = join(dir, "outside");
  await mkdir(outside);
  // Tests here write the root behind the backend's back, as another host would: a shared root.
  const backend = new PosixBackend({ root, indexRefreshMs: 50, scope: "global" });
  await backend.init();
  const refs = MountRefs.open({ stateDir: join(dir, "state"), bootId: "posix-boot" });
  const driver = new Driver(backend, refs, { timeoutMs: 30_000 });
  const extra: PosixBackend[] = [];
  return {
    dir,
    root,
    outside,
    backend,
    driver,
    metaFile: (name) => join(root, CONTROL, "volumes", name),
    async another() {
      const b = new PosixBackend({ root, scope: "global" });
      extra.push(b);
      await b.init();
      return b;
    },
    async close() {
      refs.close();
      await backend.close();
      for (const b of extra) await b.close();
      await removeTempDir(dir);
    },
  };
}

const modeOf = async (path: string): Promise<number> => (await lstat(path)).mode & 0o7777;

describe("posix backend", () => {
  let h: PosixHarness;
  beforeEach(async () => {
    h = await makeHarness();
  });
  afterEach(async () => {
    await h.close();
  });

  describe("ownership options", () => {
    test("user and group by name set the directory's uid and gid", async () => {
      await h.driver.create("named", { user: "nobody", group: "nogroup" });
      const info = await lstat(join(h.root, "named"));
      expect(info.uid).toBe(65534);
      expect(info.gid).toBe(65534);
      expect(info.mode & 0o7777).toBe(0o755);
    });

    test("numeric user and group ids are used as given, even without an account", async () => {
      await h.driver.create("numeric", { user: "1234", group: "4321" });
      const info = await lstat(join(h.root, "numeric"));
      expect(info.uid).toBe(1234);
      expect(info.gid).toBe(4321);
    });

    test("a user alone changes only the uid, a group alone only the gid", async () => {
      await h.driver.create("u", { user: "1234" });
      await h.driver.create("g", { group: "4321" });
      const u = await lstat(join(h.root, "u"));
      const g = await lstat(join(h.root, "g"));
      expect([u.uid, u.gid]).toEqual([1234, 0]);
      expect([g.uid, g.gid]).toEqual([0, 4321]);
    });

    test("mode 2770 with a new owner keeps the setgid bit", async () => {
      await h.driver.create("shared", { user: "nobody", group: "nogroup", mode: "2770" });
      const info = await lstat(join(h.root, "shared"));
      expect(info.mode & 0o7777).toBe(0o2770);
      expect([info.uid, info.gid]).toEqual([65534, 65534]);
    });

    test("modes are octal with 1 to 5 digits and set exactly, ignoring the umask", async () => {
      const cases: [string, number][] = [
        ["0", 0o0],
        ["700", 0o700],
        ["0777", 0o777],
        ["01777", 0o1777],
        ["7777", 0o7777],
      ];
      for (const [i, [mode, expected]] of cases.entries()) {
        await h.driver.create(`mode-${i}`, { mode });
        expect(await modeOf(join(h.root, `mode-${i}`))).toBe(expected);
      }
    });

    test("Create of an existing volume with other options leaves its owner and mode alone", async () => {
      await h.driver.create("fixed", { mode: "0750", user: "1234" });
      await h.driver.create("fixed", { mode: "0777", user: "nobody", group: "nogroup" });
      const info = await lstat(join(h.root, "fixed"));
      expect(info.mode & 0o7777).toBe(0o750);
      expect([info.uid, info.gid]).toEqual([1234, 0]);
      expect((await h.driver.get("fixed")).status.options).toEqual({ mode: "0750", user: "1234" });
    });

    test("bad modes and unknown users or groups are refused with INVALID_OPTION, leaving nothing behind", async () => {
      const before = await snapshotTree(h.root);
      // Each case with the value the error message must quote.
      const bad: [Record<string, string>, string][] = [
        [{ mode: "999" }, "999"],
        [{ mode: "10000" }, "10000"],
        [{ mode: "abc" }, "abc"],
        [{ mode: "-1" }, "-1"],
        [{ mode: "" }, ""],
        [{ mode: "0x1ff" }, "0x1ff"],
        [{ mode: " 755" }, " 755"],
        [{ mode: "755 " }, "755 "],
        [{ user: "no-such-user-dqp" }, "no-such-user-dqp"],
        [{ group: "no-such-group-dqp" }, "no-such-group-dqp"],
        [{ user: "4294967295" }, "4294967295"],
        [{ user: "" }, ""],
        [{ user: "nobody", mode: "8" }, "8"],
        [{ user: "no-such-user-dqp", mode: "0700" }, "no-such-user-dqp"],
      ];
      for (const [options, culprit] of bad) {
        const error = await expectPluginError(h.driver.create("refused", options), "INVALID_OPTION");
        expect(error.message).toContain(JSON.stringify(culprit));
        expect(await lstatOrUndefined(join(h.root, "refused"))).toBeUndefined();
        expect(await lstatOrUndefined(h.metaFile("refused"))).toBeUndefined();
      }
      expect(await snapshotTree(h.root)).toEqual(before);
      expect(await h.driver.list()).toEqual([]);
    });
  });

  describe("metadata", () => {
    test("metadata files are 0644 and requested modes exact even under a restrictive umask", async () => {
      const previous = process.umask(0o077);
      try {
        await h.driver.create("masked", { mode: "0755" });
        await h.driver.create("masked-meta-only", {});
      } finally {
        process.umask(previous);
      }
      expect(await modeOf(h.metaFile("masked"))).toBe(0o644);
      expect(await modeOf(h.metaFile("masked-meta-only"))).toBe(0o644);
      expect(await modeOf(join(h.root, "masked"))).toBe(0o755);
    });

    test("lives in <root>/.docker-quobyte-plugin/volumes/<name>, mode 0644, with createdAt and options", async () => {
      await h.driver.create("meta", { mode: "0700", user: "nobody" });
      const file = h.metaFile("meta");
      const info = await lstat(file);
      expect(info.isFile()).toBe(true);
      expect(info.mode & 0o7777).toBe(0o644);
      const stored = JSON.parse(await readFile(file, "utf8")) as Record<string, unknown>;
      expect(stored.createdAt).toBe((await h.driver.get("meta")).createdAt);
      expect(stored.options).toEqual({ mode: "0700", user: "nobody" });
      expect(stored.state).toBe("ready");
      expect(await readdir(join(h.root, CONTROL, "volumes"))).toEqual(["meta"]);
    });

    test("Get reports the creation options in Status", async () => {
      await h.driver.create("st", { group: "nogroup" });
      const record = await h.driver.get("st");
      expect(record.status).toEqual({ backend: "posix", options: { group: "nogroup" }, mounts: 0 });
    });

    test("a second backend on the same root (another host) sees, and can remove, the first one's volumes", async () => {
      await h.driver.create("shared-1", { mode: "0770" });
      await h.driver.create("shared-2", {});
      const other = await h.another();
      expect((await other.list()).map((v) => v.name).sort()).toEqual(["shared-1", "shared-2"]);
      const record = await other.inspect("shared-1");
      const mine = await h.driver.get("shared-1");
      expect(record?.createdAt).toBe(mine.createdAt);
      expect(record?.mountpoint).toBe(mine.mountpoint);
      expect(await other.prepareMount("shared-1")).toBe(mine.mountpoint);

      await other.remove("shared-2");
      // List answers from an index that catches up with other hosts in the background.
      const deadline = Date.now() + 5000;
      while ((await h.driver.list()).length !== 1 && Date.now() < deadline) await Bun.sleep(20);
      expect((await h.driver.list()).map((v) => v.name)).toEqual(["shared-1"]);
      await expectPluginError(h.driver.get("shared-2"), "VOLUME_NOT_FOUND");
    });

    test("directories under the root without metadata are not volumes", async () => {
      await mkdir(join(h.root, "stray"));
      expect(await h.driver.list()).toEqual([]);
      await expectPluginError(h.driver.get("stray"), "VOLUME_NOT_FOUND");
      await expectPluginError(h.driver.mount("stray", "m"), "VOLUME_NOT_FOUND");
    });
  });

  describe("symlink safety", () => {
    test("Create refuses a symlink planted at <root>/<name> and leaves its target untouched", async () => {
      await chown(h.outside, 0, 0);
      await chmod(h.outside, 0o700);
      await writeFile(join(h.outside, "secret"), "s");
      await symlink(h.outside, join(h.root, "planted"));
      const before = await snapshotTree(h.outside);
      const outsideInfo = await stat(h.outside);

      await expectPluginError(h.driver.create("planted", { user: "nobody", group: "nogroup", mode: "0777" }), "BACKEND_FAILED");
      await expectPluginError(h.driver.create("planted", {}), "BACKEND_FAILED");

      const after = await stat(h.outside);
      expect([after.uid, after.gid, after.mode]).toEqual([outsideInfo.uid, outsideInfo.gid, outsideInfo.mode]);
      expect(await snapshotTree(h.outside)).toEqual(before);
      expect(await lstatOrUndefined(h.metaFile("planted"))).toBeUndefined();
      expect(await h.driver.list()).toEqual([]);
      expect((await lstat(join(h.root, "planted"))).isSymbolicLink()).toBe(true);
    });

    test("Create refuses a regular file at <root>/<name> and keeps it", async () => {
      await writeFile(join(h.root, "file"), "content");
      await expectPluginError(h.driver.create("file", { mode: "0777" }), "BACKEND_FAILED");
      expect(await readFile(join(h.root, "file"), "utf8")).toBe("content");
      expect(await modeOf(join(h.root, "file"))).toBe(0o644);
      expect(await h.driver.list()).toEqual([]);
    });

    test("Remove of a volume holding symlinks to outside data deletes the volume but not the outside data", async () => {
      await mkdir(join(h.outside, "sub"));
      await writeFile(join(h.outside, "sub", "deep"), "deep");
      await writeFile(join(h.outside, "top"), "top");
      const before = await snapshotTree(h.outside);

      await h.driver.create("links", {});
      const path = await h.driver.mount("links", "m");
      await symlink(h.outside, join(path, "to-dir"));
      await symlink(join(h.outside, "top"), join(path, "to-file"));
      await mkdir(join(path, "nested"));
      await symlink(join(h.outside, "sub"), join(path, "nested", "to-sub"));
      await h.driver.unmount("links", "m");
      await h.driver.remove("links");

      expect(await lstatOrUndefined(path)).toBeUndefined();
      expect(await snapshotTree(h.outside)).toEqual(before);
      expect(await readFile(join(h.outside, "sub", "deep"), "utf8")).toBe("deep");
      expect(await readdir(join(h.root, CONTROL, "trash"))).toEqual([]);
    });

    test("a volume directory replaced by a symlink is not mounted, and Remove deletes the link, not the target", async () => {
      await writeFile(join(h.outside, "keep"), "keep");
      await h.driver.create("swapped", {});
      await removeTempDir(join(h.root, "swapped"));
      await symlink(h.outside, join(h.root, "swapped"));
      const before = await snapshotTree(h.outside);

      await expectPluginError(h.driver.mount("swapped", "m"), "BACKEND_FAILED");
      expect(h.driver.mounts().size).toBe(0);
      await h.driver.remove("swapped");

      expect(await lstatOrUndefined(join(h.root, "swapped"))).toBeUndefined();
      expect(await snapshotTree(h.outside)).toEqual(before);
      expect(await h.driver.list()).toEqual([]);
    });

    test("a symlink planted in place of a metadata file is never followed", async () => {
      const target = join(h.outside, "fake-meta");
      // Valid metadata: an implementation that followed the link would accept it.
      const content = `${JSON.stringify({ version: 1, createdAt: new Date(0).toISOString(), options: {}, state: "ready" })}\n`;
      await writeFile(target, content);
      await chmod(target, 0o600);
      await h.driver.create("victim", {});
      await removeTempDir(h.metaFile("victim"));
      await symlink(target, h.metaFile("victim"));
      const before = await snapshotTree(h.outside);

      await expectPluginError(h.driver.get("victim"), "BACKEND_FAILED");
      await expectPluginError(h.driver.mount("victim", "m"), "BACKEND_FAILED");
      await expectPluginError(h.driver.create("victim", { mode: "0777" }), "BACKEND_FAILED");
      await expectPluginError(h.driver.remove("victim"), "BACKEND_FAILED");

      expect(h.driver.mounts().size).toBe(0);
      expect(await readFile(target, "utf8")).toBe(content);
      expect(await snapshotTree(h.outside)).toEqual(before);
    });
  });

  describe("interrupted operations", () => {
    async function markRemoving(name: string): Promise<void> {
      const file = h.metaFile(name);
      const stored = JSON.parse(await readFile(file, "utf8")) as Record<string, unknown>;
      await writeFile(file, JSON.stringify({ ...stored, state: "removing" }));
    }

    test("a volume left in state removing is gone for Get and List, and cannot be mounted", async () => {
      await h.driver.create("half", {});
      await markRemoving("half");
      await expectPluginError(h.driver.get("half"), "VOLUME_NOT_FOUND");
      await expectPluginError(h.driver.mount("half", "m"), "VOLUME_NOT_FOUND");
      // List answers from the index, which re-reads the shared root every 50 ms here.
      const deadline = Date.now() + 2000;
      while ((await h.driver.list()).length > 0 && Date.now() < deadline) await Bun.sleep(20);
      expect(await h.driver.list()).toEqual([]);
      expect(h.driver.mounts().size).toBe(0);
    });

    for (const [when, moveData] of [
      ["after marking it", false],
      ["after moving its data into the trash", true],
    ] as const) {
      test(`a Remove cut ${when} is finished at the next start, also by another host sharing the root`, async () => {
        await h.driver.create("half", {});
        await writeFile(join(h.root, "half", "data"), "x");
        await markRemoving("half");
        if (moveData) await rename(join(h.root, "half"), join(h.root, CONTROL, "trash", "cut-remove"));
        const restarted = await h.another();
        expect(await lstatOrUndefined(h.metaFile("half"))).toBeUndefined();
        expect(await lstatOrUndefined(join(h.root, "half"))).toBeUndefined();
        await expectPluginError(h.driver.get("half"), "VOLUME_NOT_FOUND");
        await restarted.close();
        // The data goes to the trash at start and the background sweep deletes it.
        const trash = join(h.root, CONTROL, "trash");
        const deadline = Date.now() + 5000;
        while ((await readdir(trash)).length > 0 && Date.now() < deadline) await Bun.sleep(20);
        expect(await readdir(trash)).toEqual([]);
      });
    }

    test("a Remove that fails before the data moved leaves the volume whole and listed", async () => {
      await h.driver.create("kept", {});
      await writeFile(join(h.root, "kept", "data"), "x");
      const trash = join(h.root, CONTROL, "trash");
      await rm(trash, { recursive: true });
      await symlink(h.outside, trash);
      await expectPluginError(h.driver.remove("kept"), "BACKEND_FAILED");
      expect((await h.driver.get("kept")).status.options).toEqual({});
      expect(await readFile(join(h.root, "kept", "data"), "utf8")).toBe("x");
      expect(JSON.parse(await readFile(h.metaFile("kept"), "utf8")).state).toBe("ready");
      expect(await readdir(h.outside)).toEqual([]);
    });

    test("a Remove that finds the trash missing keeps the volume whole and listed (not taken for data already gone)", async () => {
      await h.driver.create("kept", {});
      await writeFile(join(h.root, "kept", "data"), "x");
      await rm(join(h.root, CONTROL, "trash"), { recursive: true });
      await expectPluginError(h.driver.remove("kept"), "BACKEND_FAILED");
      expect(await readFile(join(h.root, "kept", "data"), "utf8")).toBe("x");
      expect(JSON.parse(await readFile(h.metaFile("kept"), "utf8")).state).toBe("ready");
      expect((await h.driver.list()).map((v) => v.name)).toEqual(["kept"]);
    });

    test("an interrupted remove is finished by the next Remove", async () => {
      await h.driver.create("half", {});
      await writeFile(join(h.root, "half", "data"), "x");
      await markRemoving("half");

      await h.driver.remove("half");
      expect(await lstatOrUndefined(join(h.root, "half"))).toBeUndefined();
      expect(await lstatOrUndefined(h.metaFile("half"))).toBeUndefined();
      expect(await h.driver.list()).toEqual([]);
      expect(await readdir(join(h.root, CONTROL, "trash"))).toEqual([]);
    });

    test("an interrupted remove whose directory was already moved away is finished by the next Remove", async () => {
      await h.driver.create("half", {});
      await markRemoving("half");
      await removeTempDir(join(h.root, "half"));

      await h.driver.remove("half");
      expect(await lstatOrUndefined(h.metaFile("half"))).toBeUndefined();
      expect(await h.driver.list()).toEqual([]);
    });

    test("an interrupted remove is finished by a Create of the same name, which makes a fresh empty volume", async () => {
      await h.driver.create("reborn", { mode: "0700" });
      const old = await h.driver.get("reborn");
      await writeFile(join(h.root, "reborn", "stale"), "x");
      await markRemoving("reborn");

      await Bun.sleep(5);
      await h.driver.create("reborn", { mode: "0750" });
      const fresh = await h.driver.get("reborn");
      expect(fresh.status.state).toBeUndefined();
      expect(fresh.status.options).toEqual({ mode: "0750" });
      expect(fresh.createdAt).not.toBe(old.createdAt);
      expect(await readdir(join(h.root, "reborn"))).toEqual([]);
      expect(await modeOf(join(h.root, "reborn"))).toBe(0o750);
      const stored = JSON.parse(await readFile(h.metaFile("reborn"), "utf8")) as Record<string, unknown>;
      expect(stored.state).toBe("ready");
      expect(await h.driver.mount("reborn", "m")).toBe(join(h.root, "reborn"));
    });

    test("a directory without metadata (an interrupted create) is adopted by Create with its data", async () => {
      await mkdir(join(h.root, "adopt"), { mode: 0o755 });
      await writeFile(join(h.root, "adopt", "existing"), "data");

      await h.driver.create("adopt", { mode: "0770", group: "nogroup" });
      const record = await h.driver.get("adopt");
      expect(record.status.options).toEqual({ mode: "0770", group: "nogroup" });
      expect(await readFile(join(h.root, "adopt", "existing"), "utf8")).toBe("data");
      const info = await lstat(join(h.root, "adopt"));
      expect(info.mode & 0o7777).toBe(0o770);
      expect(info.gid).toBe(65534);
      expect(await h.driver.list()).toEqual([{ name: "adopt", mountpoint: join(h.root, "adopt") }]);
    });

    test("Create adopting a directory changes only the owner parts and mode it was given", async () => {
      for (const name of ["only-user", "only-mode"]) {
        await mkdir(join(h.root, name));
        await chown(join(h.root, name), 1234, 4321);
        await chmod(join(h.root, name), 0o711);
      }
      await h.driver.create("only-user", { user: "5678" });
      await h.driver.create("only-mode", { mode: "0750" });
      const user = await lstat(join(h.root, "only-user"));
      const mode = await lstat(join(h.root, "only-mode"));
      expect([user.uid, user.gid, user.mode & 0o7777]).toEqual([5678, 4321, 0o711]);
      expect([mode.uid, mode.gid, mode.mode & 0o7777]).toEqual([1234, 4321, 0o750]);
    });

    test("leftover temporary files of an interrupted metadata write are not volumes", async () => {
      await h.driver.create("real", {});
      await writeFile(join(h.root, CONTROL, "volumes", ".tmp-999-0000"), "{}");
      expect(await h.driver.list()).toEqual([{ name: "real", mountpoint: join(h.root, "real") }]);
    });

        test("init empties the trash left by interrupted removals", async () => {
      const leftover = join(h.root, CONTROL, "trash", "leftover");
      await mkdir(join(leftover, "deep"), { recursive: true });
      await writeFile(join(leftover, "deep", "f"), "x");
      await h.another();
      // The sweep runs in the background (close does not wait for it either).
      const trash = join(h.root, CONTROL, "trash");
      for (let tries = 0; tries < 400 && (await readdir(trash)).length > 0; tries++) await Bun.sleep(25);
      expect(await readdir(trash)).toEqual([]);
    });
  });

  describe("root and control directory", () => {
    test("init refuses a root whose control directory is a symlink and writes nothing through it", async () => {
      const root = join(h.dir, "evil-root");
      await mkdir(root);
      await symlink(h.outside, join(root, CONTROL));
      const before = await snapshotTree(h.outside);
      const backend = new PosixBackend({ root });
      await expectPluginError(backend.init(), "BACKEND_FAILED");
      expect(await snapshotTree(h.outside)).toEqual(before);
      expect(await readdir(h.outside)).toEqual([]);
    });

    test("init refuses a root whose volumes metadata directory is a symlink", async () => {
      const root = join(h.dir, "evil-root-2");
      await mkdir(join(root, CONTROL), { recursive: true });
      await symlink(h.outside, join(root, CONTROL, "volumes"));
      await expectPluginError(new PosixBackend({ root }).init(), "BACKEND_FAILED");
      expect(await readdir(h.outside)).toEqual([]);
    });

    test("init creates a missing root and hands out real paths when the root is reached through a symlink", async () => {
      const link = join(h.dir, "link-to-root");
      await symlink(h.root, link);
      const viaLink = new PosixBackend({ root: link });
      await viaLink.init();
      try {
        expect(viaLink.rootPath).toBe(h.root);
        expect(viaLink.pathOf("x")).toBe(join(h.root, "x"));
      } finally {
        await viaLink.close();
      }

      const fresh = new PosixBackend({ root: join(h.dir, "new", "nested") });
      await fresh.init();
      try {
        expect((await lstat(join(h.dir, "new", "nested", CONTROL, "volumes"))).isDirectory()).toBe(true);
        expect(await modeOf(join(h.dir, "new", "nested", CONTROL, "trash"))).toBe(0o700);
      } finally {
        await fresh.close();
      }
    });

    test("names starting with a dot are refused, so they cannot reach the control directory", async () => {
      const before = await snapshotTree(h.root);
      for (const name of [CONTROL, ".hidden", ".tmp-1", "..."]) {
        await expectPluginError(h.driver.create(name, {}), "INVALID_NAME");
        await expectPluginError(h.driver.remove(name), "INVALID_NAME");
        await expectPluginError(h.driver.get(name), "INVALID_NAME");
      }
      expect(await snapshotTree(h.root)).toEqual(before);
      expect((await lstat(join(h.root, CONTROL, "volumes"))).isDirectory()).toBe(true);
    });
  });
});
