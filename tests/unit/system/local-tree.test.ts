import { afterEach, beforeEach, expect, test } from "bun:test";
import { mkdirSync, renameSync, symlinkSync, writeFileSync } from "node:fs";
import { PosixBackend } from "../../../src/backends/posix/posix-backend.ts";
import { isLocal, keepsMetadataOrder, treeFilesystems } from "../../../src/system/mountinfo.ts";
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
  expect(isLocal(await treeFilesystems("/var/lib/volumes", file))).toBe(true);
  expect(isLocal(await treeFilesystems("/srv/volumes", file))).toBe(true);
  // A sibling that merely shares the prefix is not below the root.
  expect(isLocal(await treeFilesystems("/srv/oth", file))).toBe(true);
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
  expect(isLocal(await treeFilesystems("/mnt/quobyte/volumes", file))).toBe(false);
  expect(isLocal(await treeFilesystems("/srv/vols", file))).toBe(false);
  expect(isLocal(await treeFilesystems("/data/volumes", file))).toBe(false);
  // Mounted later over the NFS tree: the last, longest mount point holds the path.
  expect(isLocal(await treeFilesystems("/data/cache/volumes", file))).toBe(true);
});

test("the intent log needs filesystems whose fsync commits every earlier metadata change: not ext2, f2fs, btrfs nor zfs, nor anything below that is not", async () => {
  const file = mountinfo([
    ["/", "ext4", "/dev/vda"],
    ["/old", "ext2", "/dev/vdb"],
    ["/flash", "f2fs", "/dev/vdc"],
    ["/srv", "xfs", "/dev/vdd"],
    ["/srv/v/cache", "ext2", "/dev/vde"],
    ["/cow", "btrfs", "/dev/vdf"],
    ["/tank", "zfs", "tank/data"],
  ]);
  expect(await treeFilesystems("/var/lib/volumes", file)).toEqual(["ext4"]);
  expect(await treeFilesystems("/srv/v", file)).toEqual(["xfs", "ext2"]);
  for (const [path, ordered] of [
    ["/var/lib/volumes", true],
    ["/srv/w", true],
    ["/old/volumes", false],
    ["/flash/volumes", false],
    ["/srv/v", false],
    ["/cow/volumes", false],
    ["/tank/volumes", false],
  ] as const) {
    const types = await treeFilesystems(path, file);
    expect(isLocal(types)).toBe(true);
    expect(keepsMetadataOrder(types)).toBe(ordered);
  }
  expect(keepsMetadataOrder([])).toBe(false);
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
