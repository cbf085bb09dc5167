import { afterEach, describe, expect, test } from "bun:test";
import { mkdir, mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DirectorySync, fsyncDirectory } from "../../../src/system/directory-sync.ts";
import { settled } from "../../support/settled.ts";

/**
 * The real fsync, held at its start until the test lets it go, so that a test can
 * decide which callers arrive while one is in flight.
 */
class GatedFsync {
  readonly started: string[] = [];
  private gates: (() => void)[] = [];

  readonly run = async (dir: string): Promise<void> => {
    this.started.push(dir);
    await new Promise<void>((resolve) => this.gates.push(resolve));
    await fsyncDirectory(dir);
  };

  /** Lets every fsync started so far run. */
  release(): void {
    for (const open of this.gates.splice(0)) open();
  }
}

describe("DirectorySync (group commit of directory fsyncs)", () => {
  let dir = "";
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = "";
  });

  test("callers arriving while an fsync runs share ONE next fsync, which starts only after the running one ends", async () => {
    dir = await mkdtemp(join(tmpdir(), "dqp-dirsync-"));
    const fsync = new GatedFsync();
    const sync = new DirectorySync(fsync.run);

    const first = sync.sync(dir);
    // Their renames happened after `first` started: `first` must not answer them.
    await rename(await tempFile(dir, "a"), join(dir, "a"));
    const second = sync.sync(dir);
    await rename(await tempFile(dir, "b"), join(dir, "b"));
    const third = sync.sync(dir);
    expect(fsync.started).toEqual([dir]);

    fsync.release();
    await first;
    expect(await settled(second)).toBe(false);
    expect(await settled(third)).toBe(false);
    // The second round started once the first ended, for both waiting callers together.
    expect(fsync.started).toEqual([dir, dir]);

    fsync.release();
    await Promise.all([second, third]);
    expect(fsync.started).toEqual([dir, dir]);
  });

  test("concurrent callers with nothing in flight: the first starts at once, the rest share one more", async () => {
    dir = await mkdtemp(join(tmpdir(), "dqp-dirsync-"));
    const fsync = new GatedFsync();
    const sync = new DirectorySync(fsync.run);
    const all = Array.from({ length: 8 }, () => sync.sync(dir));
    fsync.release();
    await Bun.sleep(5);
    fsync.release();
    await Promise.all(all);
    expect(fsync.started.length).toBe(2);
  });

  test("a caller after every fsync ended starts a fresh one; different directories never wait for each other", async () => {
    dir = await mkdtemp(join(tmpdir(), "dqp-dirsync-"));
    const other = join(dir, "other");
    await mkdir(other);
    const fsync = new GatedFsync();
    const sync = new DirectorySync(fsync.run);

    const here = sync.sync(dir);
    const there = sync.sync(other);
    expect(fsync.started).toEqual([dir, other]);
    fsync.release();
    await Promise.all([here, there]);

    const later = sync.sync(dir);
    expect(fsync.started).toEqual([dir, other, dir]);
    fsync.release();
    await later;
  });

  test("a failed fsync fails its callers (the one that started it and those queued behind), and a later caller tries again", async () => {
    dir = await mkdtemp(join(tmpdir(), "dqp-dirsync-"));
    const gone = join(dir, "gone");
    const sync = new DirectorySync();
    const shared = [sync.sync(gone), sync.sync(gone), sync.sync(gone)];
    for (const result of await Promise.allSettled(shared)) {
      expect(result.status).toBe("rejected");
      if (result.status === "rejected") expect((result.reason as { code?: string }).code).toBe("ENOENT");
    }
    await mkdir(gone);
    await sync.sync(gone);
  });
});

async function tempFile(dir: string, name: string): Promise<string> {
  const path = join(dir, `.tmp-${name}`);
  await writeFile(path, name);
  return path;
}
