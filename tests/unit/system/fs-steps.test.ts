import { afterEach, describe, expect, test } from "bun:test";
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stageFile } from "../../../src/system/atomic-file.ts";
import { BLOCKING, type FsSteps, POOLED } from "../../../src/system/fs-steps.ts";
import { bothStaged } from "../../../src/backends/metadata-store.ts";

let dir = "";
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = "";
});

const modeOf = async (path: string) => (await lstat(path)).mode & 0o7777;

// Both kinds must behave alike: the posix backend picks one by the filesystem at start,
// and the suites that run on a local disk exercise only BLOCKING.
for (const [kind, steps] of [
  ["POOLED", POOLED],
  ["BLOCKING", BLOCKING],
] as [string, FsSteps][]) {
  describe(`FsSteps ${kind}`, () => {
    test("createFile writes the content with exactly the mode asked (not cut by the umask) and never replaces a file", async () => {
      dir = await mkdtemp(join(tmpdir(), "dqp-steps-"));
      const previous = process.umask(0o077);
      try {
        await steps.createFile(join(dir, "a"), "content\n", 0o644, true);
      } finally {
        process.umask(previous);
      }
      expect(await readFile(join(dir, "a"), "utf8")).toBe("content\n");
      expect(await modeOf(join(dir, "a"))).toBe(0o644);
      await expect(steps.createFile(join(dir, "a"), "other", 0o644, false)).rejects.toMatchObject({ code: "EEXIST" });
      expect(await readFile(join(dir, "a"), "utf8")).toBe("content\n");
    });

    test("createFile and setOwnerAndMode never go through a symlink planted in place", async () => {
      dir = await mkdtemp(join(tmpdir(), "dqp-steps-"));
      const outside = join(dir, "outside");
      await mkdir(outside, { mode: 0o700 });
      await writeFile(join(outside, "file"), "keep");
      await symlink(join(outside, "file"), join(dir, "file-link"));
      await symlink(outside, join(dir, "dir-link"));

      await expect(steps.createFile(join(dir, "file-link"), "x", 0o644, false)).rejects.toMatchObject({ code: "EEXIST" });
      await expect(steps.setOwnerAndMode(join(dir, "dir-link"), { mode: 0o777 })).rejects.toThrow();
      expect(await readFile(join(outside, "file"), "utf8")).toBe("keep");
      expect(await modeOf(outside)).toBe(0o700);
    });

    test("setOwnerAndMode sets the mode after the owner (setgid survives), rmdir refuses a non-empty directory", async () => {
      dir = await mkdtemp(join(tmpdir(), "dqp-steps-"));
      await steps.mkdir(join(dir, "vol"), 0o755);
      await steps.setOwnerAndMode(join(dir, "vol"), { uid: process.getuid?.() ?? 0, mode: 0o2770 });
      expect(await modeOf(join(dir, "vol"))).toBe(0o2770);
      await writeFile(join(dir, "vol", "data"), "x");
      await expect(steps.rmdir(join(dir, "vol"))).rejects.toMatchObject({ code: "ENOTEMPTY" });
      await steps.unlink(join(dir, "vol", "data"));
      await steps.rmdir(join(dir, "vol"));
      expect(await readdir(dir)).toEqual([]);
    });

    test("a staged file is invisible until commit; discard leaves nothing behind", async () => {
      dir = await mkdtemp(join(tmpdir(), "dqp-steps-"));
      const kept = await stageFile(join(dir, "kept"), "new\n", 0o644, { steps });
      const dropped = await stageFile(join(dir, "dropped"), "never\n", 0o644, { steps });
      expect((await readdir(dir)).filter((name) => !name.startsWith("."))).toEqual([]);
      await kept.commit();
      await dropped.discard();
      expect(await readdir(dir)).toEqual(["kept"]);
      expect(await readFile(join(dir, "kept"), "utf8")).toBe("new\n");
    });
  });
}

test("bothStaged: when one of two stagings fails, the other is discarded and the failure thrown", async () => {
  dir = await mkdtemp(join(tmpdir(), "dqp-steps-"));
  const failing = stageFile(join(dir, "missing-dir", "b"), "b", 0o644, { steps: BLOCKING });
  await expect(bothStaged(stageFile(join(dir, "a"), "a", 0o644, { steps: BLOCKING }), failing)).rejects.toMatchObject({ code: "ENOENT" });
  expect(await readdir(dir)).toEqual([]);
});
