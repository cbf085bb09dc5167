import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { hostIdentity } from "../../../src/system/atomic-file.ts";
import { fsyncDirectory } from "../../../src/system/directory-sync.ts";
import { POOLED } from "../../../src/system/fs-steps.ts";
import { IntentLog, type IntentLogOptions } from "../../../src/system/intent-log.ts";
import { currentBootId, currentProcessIdentity, processIdentityOf } from "../../../src/system/process-identity.ts";
import { segmentText, withRunningProcess } from "../../support/intent-segments.ts";
import { makeTempDir, removeTempDir } from "../../support/tmp.ts";
import { settled } from "../../support/settled.ts";

interface Note {
  name: string;
  n: number;
}


describe("IntentLog", () => {
  let dir = "";
  let durable: string[][] = [];
  let failDurable = false;
  const options: IntentLogOptions = {
    makeDurable: async (names) => {
      if (failDurable) throw new Error("disk gone");
      durable.push([...names].sort());
    },
    syncDirectory: fsyncDirectory,
  };
  const open = () => IntentLog.open<Note>(join(dir, "journal"), options);
  const segments = () => readdirSync(join(dir, "journal")).sort();

  beforeEach(async () => {
    dir = await makeTempDir("dqp-intent-");
    durable = [];
    failDurable = false;
  });
  afterEach(() => removeTempDir(dir));

  test("an idle log holds no file; an append writes a header and the intent, and resolves once it is synced", async () => {
    const { log, recovered } = await open();
    expect(recovered).toEqual({ entries: [], damaged: [] });
    expect(segments()).toEqual([]);
    const ticket = await log.append({ name: "a", n: 1 });
    ticket.done();
    expect(segments()).toEqual(["1.log"]);
    const lines = readFileSync(join(dir, "journal", "1.log"), "utf8").trimEnd().split("\n").map((line) => JSON.parse(line));
    expect(lines).toEqual([{ journal: 1, host: hostIdentity(), boot: currentBootId(), writer: currentProcessIdentity() }, { name: "a", n: 1 }]);
    await log.close();
  });

  test("concurrent appends all land, in one segment", async () => {
    const { log } = await open();
    const tickets = await Promise.all(Array.from({ length: 40 }, (_, n) => log.append({ name: `v${n % 5}`, n })));
    for (const ticket of tickets) ticket.done();
    const text = readFileSync(join(dir, "journal", "1.log"), "utf8");
    expect(text.trimEnd().split("\n").length).toBe(41);
    await log.close();
  });

  test("a checkpoint makes the named effects durable, then deletes the segment; the next append starts a new one", async () => {
    const { log } = await open();
    (await log.append({ name: "b", n: 1 })).done();
    (await log.append({ name: "a", n: 2 })).done();
    await log.checkpoint();
    expect(durable).toEqual([["a", "b"]]);
    expect(segments()).toEqual([]);
    expect(log.pendingSegments).toBe(0);
    (await log.append({ name: "c", n: 3 })).done();
    expect(segments()).toEqual(["2.log"]);
    await log.close();
    expect(durable).toEqual([["a", "b"], ["c"]]);
    expect(segments()).toEqual([]);
  });

  test("a checkpoint runs by itself about a second after an append", async () => {
    const { log } = await open();
    (await log.append({ name: "a", n: 1 })).done();
    const deadline = performance.now() + 5000;
    while (segments().length > 0 && performance.now() < deadline) await Bun.sleep(50);
    expect(segments()).toEqual([]);
    expect(durable).toEqual([["a"]]);
    await log.close();
  });

  test("a checkpoint waits for the effects of intents still being carried out", async () => {
    const { log } = await open();
    const ticket = await log.append({ name: "slow", n: 1 });
    const checkpoint = log.checkpoint();
    expect(await settled(checkpoint, 30)).toBe(false);
    expect(segments()).toEqual(["1.log"]);
    // Appends meanwhile go to a new segment, which this checkpoint does not delete.
    (await log.append({ name: "later", n: 2 })).done();
    ticket.done();
    await checkpoint;
    expect(durable).toEqual([["slow"]]);
    expect(segments()).toEqual(["2.log"]);
    await log.close();
  });

  test("a failed checkpoint keeps its segments, says so, and is retried until one succeeds", async () => {
    const warnings: string[] = [];
    const { log } = await IntentLog.open<Note>(join(dir, "journal"), { ...options, warn: (m) => warnings.push(m) });
    (await log.append({ name: "a", n: 1 })).done();
    failDurable = true;
    await expect(log.checkpoint()).rejects.toThrow("disk gone");
    expect(warnings.join("\n")).toContain("disk gone");
    expect(segments()).toEqual(["1.log"]);
    expect(log.checkpointFailure?.message).toBe("disk gone");
    // Retried by itself, with no new intent to start it.
    failDurable = false;
    const deadline = performance.now() + 5000;
    while (segments().length > 0 && performance.now() < deadline) await Bun.sleep(50);
    expect(segments()).toEqual([]);
    expect(durable).toEqual([["a"]]);
    expect(log.checkpointFailure).toBeUndefined();
    await log.close();
  });

  test("after close, appends are refused", async () => {
    const { log } = await open();
    await log.close();
    await expect(log.append({ name: "a", n: 1 })).rejects.toThrow("closed");
  });

  test("what a dead writer left is recovered in order, across segments, and deleted once forgotten", async () => {
    const first = await open();
    (await first.log.append({ name: "a", n: 1 })).done();
    // The writer "dies": its segment stays. A second log opened on the directory reads it.
    const journal = join(dir, "journal");
    writeFileSync(join(journal, "7.log"), segmentText([{ name: "b", n: 2 }, { name: "a", n: 3 }]));
    const second = await open();
    expect(second.recovered.entries).toEqual([
      { name: "a", n: 1 },
      { name: "b", n: 2 },
      { name: "a", n: 3 },
    ]);
    // New segments sort after the recovered ones.
    (await second.log.append({ name: "c", n: 4 })).done();
    expect(segments()).toEqual(["1.log", "7.log", "8.log"]);
    await second.log.forgetRecovered();
    expect(segments()).toEqual(["8.log"]);
    await second.log.close();
  });

  test("entries carried over wait in a segment of their own for the next start; a new intent about a name takes its entries out", async () => {
    const journal = join(dir, "journal");
    await open();
    writeFileSync(join(journal, "1.log"), segmentText([{ name: "a", n: 1 }, { name: "b", n: 2 }, { name: "c", n: 3 }, { name: "b", n: 4 }]));
    const first = await open();
    expect(first.recovered.entries.length).toBe(4);
    await first.log.forgetRecovered([{ name: "b", n: 2 }, { name: "c", n: 3 }, { name: "b", n: 4 }]);
    expect(segments()).toEqual(["2.log"]);
    // This process's own appends and checkpoints leave the carried segment alone.
    (await first.log.append({ name: "a", n: 5 })).done();
    await first.log.checkpoint();
    expect(segments()).toEqual(["2.log"]);
    // An intent about b supersedes b's carried entries before it is written.
    (await first.log.append({ name: "b", n: 6 })).done();
    await first.log.close();
    expect(segments()).toEqual(["2.log"]);
    expect(readFileSync(join(journal, "2.log"), "utf8").split("\n").slice(1, -1).map((line) => JSON.parse(line))).toEqual([{ name: "c", n: 3 }]);

    // Its writer gone (a test stand-in: the same process, so not "running" for open), the next start replays it.
    const second = await open();
    expect(second.recovered.entries).toEqual([{ name: "c", n: 3 }]);
    // Once c's entries are taken out too, the carried segment goes.
    await second.log.forgetRecovered([{ name: "c", n: 3 }]);
    expect(segments()).toEqual(["3.log"]);
    (await second.log.append({ name: "c", n: 7 })).done();
    expect(segments()).toEqual(["4.log"]);
    await second.log.close();
    expect(segments()).toEqual([]);
  });

  test("a rewrite of the carried segment that fails fails only its own append; the next one about the name takes it out", async () => {
    const journal = join(dir, "journal");
    await open();
    writeFileSync(join(journal, "1.log"), segmentText([{ name: "b", n: 1 }, { name: "c", n: 2 }]));
    const { log } = await open();
    await log.forgetRecovered([{ name: "b", n: 1 }, { name: "c", n: 2 }]);
    const createFile = POOLED.createFile;
    POOLED.createFile = async () => {
      throw Object.assign(new Error("ENOSPC: no space left on device"), { code: "ENOSPC" });
    };
    try {
      await expect(log.append({ name: "b", n: 3 })).rejects.toThrow("ENOSPC");
    } finally {
      POOLED.createFile = createFile;
    }
    (await log.append({ name: "b", n: 4 })).done();
    (await log.append({ name: "c", n: 5 })).done();
    await log.close();
    expect(segments()).toEqual([]);
  });

  test("a torn last line was never acknowledged and is dropped silently; a damaged line is reported, later ones kept", async () => {
    const journal = join(dir, "journal");
    await open();
    writeFileSync(join(journal, "1.log"), `${segmentText([{ name: "a", n: 1 }])}{not json}\n${JSON.stringify({ name: "b", n: 2 })}\n{"name":"c","n`);
    const { recovered } = await open();
    expect(recovered.entries).toEqual([
      { name: "a", n: 1 },
      { name: "b", n: 2 },
    ]);
    expect(recovered.damaged).toEqual([`${journal}/1.log line 3 is not JSON`]);
  });

  test("a segment from another boot is recovered, even when a running process now has its writer's pid", async () => {
    await open();
    const running = processIdentityOf(process.ppid);
    expect(running).toBeDefined();
    writeFileSync(join(dir, "journal", "1.log"), segmentText([{ name: "a", n: 1 }], { boot: "another-boot", writer: running }));
    const { recovered } = await open();
    expect(recovered.entries).toEqual([{ name: "a", n: 1 }]);
  });

  test("an empty segment (a writer killed right after creating it) recovers nothing and changes nothing", async () => {
    await open();
    writeFileSync(join(dir, "journal", "1.log"), "");
    const { log, recovered } = await open();
    expect(recovered).toEqual({ entries: [], damaged: [] });
    await log.forgetRecovered();
    expect(segments()).toEqual([]);
  });

  test("a running writer's segment and another host's are left alone", async () => {
    await withRunningProcess(async (alive) => {
      expect(alive).toBeDefined();
      await open();
      writeFileSync(join(dir, "journal", "1.log"), segmentText([{ name: "live", n: 1 }], { writer: alive }));
      writeFileSync(join(dir, "journal", "2.log"), segmentText([{ name: "elsewhere", n: 2 }], { host: "another-host" }));
      writeFileSync(join(dir, "journal", "3.log"), segmentText([{ name: "dead", n: 3 }]));
      const { log, recovered } = await open();
      expect(recovered.entries).toEqual([{ name: "dead", n: 3 }]);
      await log.forgetRecovered();
      expect(segments()).toEqual(["1.log", "2.log"]);
      // Its own segments start after every segment present, running writers' included.
      (await log.append({ name: "new", n: 4 })).done();
      expect(existsSync(join(dir, "journal", "4.log"))).toBe(true);
      await log.close();
    });
  });
});
