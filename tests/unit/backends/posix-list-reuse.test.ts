import { afterEach, beforeEach, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { PosixBackend } from "../../../src/backends/posix/posix-backend.ts";
import { makeTempDir, removeTempDir } from "../../support/tmp.ts";

// List hands out one frozen array while nothing changed (the protocol layer encodes it
// once), and a new one after every change, whoever made it.

let dir: string;
beforeEach(async () => {
  dir = await makeTempDir("dqp-list-");
});
afterEach(async () => {
  await removeTempDir(dir);
});

const names = (volumes: { name: string }[]) => volumes.map((v) => v.name).sort();

test("an unchanged index gives the same frozen array; Create and Remove give a fresh one", async () => {
  const backend = new PosixBackend({ root: `${dir}/volumes` });
  await backend.init();
  try {
    await backend.create("a", {});
    const first = await backend.list();
    expect(await backend.list()).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
    expect(() => (first as { name: string }[]).push({ name: "x" })).toThrow();
    await backend.create("b", {});
    const second = await backend.list();
    expect(second).not.toBe(first);
    expect(names(second)).toEqual(["a", "b"]);
    await backend.remove("a");
    expect(names(await backend.list())).toEqual(["b"]);
  } finally {
    await backend.close();
  }
});

test("a shared root: another host's new volume shows up after the background re-read", async () => {
  const backend = new PosixBackend({ root: `${dir}/volumes`, scope: "global", indexRefreshMs: 0 });
  await backend.init();
  try {
    await backend.create("mine", {});
    const before = await backend.list();
    // Another host's Create: its metadata file appears in the shared directory.
    writeFileSync(
      `${dir}/volumes/.docker-quobyte-plugin/volumes/theirs`,
      `${JSON.stringify({ version: 1, createdAt: new Date().toISOString(), options: {}, state: "ready" })}\n`,
    );
    let after = before;
    for (let i = 0; i < 100 && names(after).length < 2; i++) {
      await Bun.sleep(20);
      after = await backend.list();
    }
    expect(names(after)).toEqual(["mine", "theirs"]);
  } finally {
    await backend.close();
  }
});
