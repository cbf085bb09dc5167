import { afterEach, beforeEach, expect, test } from "bun:test";
import { mkdirSync, renameSync, symlinkSync, writeFileSync } from "node:fs";
import { PosixBackend } from "../../../src/backends/posix/posix-backend.ts";
import { isLocalTree } from "../../../src/system/mountinfo.ts";
import { makeTempDir, removeTempDir } from "../../support/tmp.ts";

// A Mount checks the volume directory with a blocking lstat only where that cannot hang:
// the root and everything mounted below it on local filesystems.

let dir: string;
beforeEach(async () => {
  dir = await makeTempDir("dqp-local-");
});
afterEach(async () => {
  await removeTempDir(dir);
});

function mountinfo(lines: [mountPoint: string, fsType: string, source: string][]): string {
  const file = `${dir}/mountinfo`;
  writeFileSync(
    file,
    lines.map(([mountPoint, fsType, source], i) => `${20 + i} 1 0:${i} / ${mountPoint.replaceAll(" ", "\\040")} rw,relatime shared:1 - ${fsType} ${source} rw\n`).join(""),
  );
  return file;
}

test("a root on ext4 or tmpfs, with nothing else below it, is local", async () => {
  const file = mountinfo([
    ["/", "ext4", "/dev/vda"],
    ["/srv", "tmpfs", "tmpfs"],
    ["/srv/other", "nfs4", "server:/x"],
  ]);
  expect(await isLocalTree("/var/lib/volumes", file)).toBe(true);
  expect(await isLocalTree("/srv/volumes", file)).toBe(true);
  // A sibling that merely shares the prefix is not below the root.
  expect(await isLocalTree("/srv/oth", file)).toBe(true);
});

test("a root on a network or FUSE filesystem, or with one mounted below it, is not", async () => {
  const file = mountinfo([
    ["/", "ext4", "/dev/vda"],
    ["/mnt/quobyte", "fuse.quobyte", "quobyte@registry/"],
    ["/srv/vols", "ext4", "/dev/vdb"],
    ["/srv/vols/one volume", "nfs", "server:/one"],
    ["/data", "nfs", "server:/data"],
    ["/data/cache", "tmpfs", "tmpfs"],
  ]);
  expect(await isLocalTree("/mnt/quobyte/volumes", file)).toBe(false);
  expect(await isLocalTree("/srv/vols", file)).toBe(false);
  expect(await isLocalTree("/data/volumes", file)).toBe(false);
  // Mounted later over the NFS tree: the last, longest mount point holds the path.
  expect(await isLocalTree("/data/cache/volumes", file)).toBe(true);
});

test("on a local root a Mount still refuses a volume directory swapped for a symlink", async () => {
  const backend = new PosixBackend({ root: `${dir}/volumes` });
  await backend.init();
  try {
    await backend.create("v", {});
    expect(await backend.prepareMount("v")).toBe(`${dir}/volumes/v`);
    renameSync(`${dir}/volumes/v`, `${dir}/elsewhere`);
    mkdirSync(`${dir}/outside`);
    symlinkSync(`${dir}/outside`, `${dir}/volumes/v`);
    await expect(backend.prepareMount("v")).rejects.toThrow(/not a directory \(symlinks are not followed\)/);
  } finally {
    await backend.close();
  }
});
