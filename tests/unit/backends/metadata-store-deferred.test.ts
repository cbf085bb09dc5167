import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { MetadataStore } from "../../../src/backends/metadata-store.ts";
import { POOLED } from "../../../src/system/fs-steps.ts";
import { makeTempDir, removeTempDir } from "../../support/tmp.ts";

interface Meta {
  createdAt: string;
}

describe("MetadataStore: records deferred to an intent log's checkpoint", () => {
  let dir = "";
  let store: MetadataStore<Meta>;
  const path = (name: string) => join(dir, "meta", name);
  const onDisk = (name: string): unknown => JSON.parse(readFileSync(path(name), "utf8"));

  beforeEach(async () => {
    dir = await makeTempDir("dqp-meta-deferred-");
    store = new MetadataStore<Meta>(join(dir, "meta"), { mode: 0o644, shared: false });
    await store.init();
  });
  afterEach(() => removeTempDir(dir));

  /**
   * Starts `during` while the pool writes `name`'s file (between its creation and the
   * write's return), lets the write finish, then waits for `during`.
   */
  async function whileWriting(name: string, during: () => Promise<void>): Promise<void> {
    const createFile = POOLED.createFile;
    let started: Promise<void> | undefined;
    POOLED.createFile = async (file, data, mode, durable) => {
      await createFile(file, data, mode, durable);
      if (file === path(name)) started = during();
    };
    try {
      await store.writeDeferred(new Set([name]));
    } finally {
      POOLED.createFile = createFile;
    }
    expect(started).toBeDefined();
    await started;
  }

  test("a deferred record is in the index only, until writeDeferred writes it", async () => {
    await store.defer("a", { createdAt: "t1" });
    expect(store.cached("a")).toEqual({ createdAt: "t1" });
    expect(store.entries()).toEqual([["a", { createdAt: "t1" }]]);
    expect(existsSync(path("a"))).toBe(false);
    await store.writeDeferred(new Set(["a", "unknown"]));
    expect(onDisk("a")).toEqual({ createdAt: "t1" });
    expect(existsSync(path("unknown"))).toBe(false);
    // Written once: a later checkpoint naming it again leaves the file alone, and a delete removes it.
    writeFileSync(path("a"), `${JSON.stringify({ createdAt: "edited" })}\n`);
    await store.writeDeferred(new Set(["a"]));
    expect(onDisk("a")).toEqual({ createdAt: "edited" });
    await store.delete("a");
    expect(existsSync(path("a"))).toBe(false);
  });

  test("a deferred record deleted before the checkpoint never reaches the disk", async () => {
    await store.defer("a", { createdAt: "t1" });
    await store.delete("a");
    expect(store.cached("a")).toBeUndefined();
    await store.writeDeferred(new Set(["a"]));
    expect(existsSync(path("a"))).toBe(false);
  });

  test("a record of an older life on disk is replaced at once, so a Remove before the checkpoint deletes it", async () => {
    await store.write("b", { createdAt: "t0" });
    await store.defer("b", { createdAt: "t1" });
    expect(onDisk("b")).toEqual({ createdAt: "t1" });
    await store.delete("b");
    expect(existsSync(path("b"))).toBe(false);
  });

  test("a file torn by a crash under the name is replaced by the deferred record", async () => {
    writeFileSync(path("a"), '{"createdAt":');
    await store.defer("a", { createdAt: "t1" });
    await store.writeDeferred(new Set(["a"]));
    expect(onDisk("a")).toEqual({ createdAt: "t1" });
  });

  test("deleted while its file is being written: the file goes again", async () => {
    await store.defer("a", { createdAt: "t1" });
    await whileWriting("a", () => store.delete("a"));
    expect(existsSync(path("a"))).toBe(false);
    expect(store.cached("a")).toBeUndefined();
  });

  test("deleted and created anew while its file is being written: the old file goes, the new life stays deferred", async () => {
    await store.defer("a", { createdAt: "t1" });
    await whileWriting("a", async () => {
      await store.delete("a");
      await store.defer("a", { createdAt: "t2" });
    });
    expect(existsSync(path("a"))).toBe(false);
    expect(store.cached("a")).toEqual({ createdAt: "t2" });
    await store.writeDeferred(new Set(["a"]));
    expect(onDisk("a")).toEqual({ createdAt: "t2" });
  });

  test("deleted while its file is being written, with the deletion failing: the delete fails (the Remove), not the checkpoint", async () => {
    await store.defer("a", { createdAt: "t1" });
    const unlink = POOLED.unlink;
    POOLED.unlink = async () => {
      throw Object.assign(new Error("EIO: i/o error"), { code: "EIO" });
    };
    try {
      await expect(whileWriting("a", () => store.delete("a"))).rejects.toThrow("cannot delete metadata of volume");
    } finally {
      POOLED.unlink = unlink;
    }
    // The volume is still there, record and all; the next delete goes through.
    expect(store.cached("a")).toEqual({ createdAt: "t1" });
    expect(onDisk("a")).toEqual({ createdAt: "t1" });
    await store.delete("a");
    expect(existsSync(path("a"))).toBe(false);
  });

  test("a reload from disk keeps deferred records", async () => {
    await store.defer("a", { createdAt: "t1" });
    // Another file makes the directory look changed, so refresh reads it again.
    writeFileSync(path("b"), `${JSON.stringify({ createdAt: "t0" })}\n`);
    await store.refresh();
    expect(store.cached("b")).toEqual({ createdAt: "t0" });
    expect(store.cached("a")).toEqual({ createdAt: "t1" });
  });
});
