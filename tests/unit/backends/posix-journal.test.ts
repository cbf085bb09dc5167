import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, readdir, readFile, rename, rmdir, stat, symlink, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { PosixIntent } from "../../../src/backends/posix/intents.ts";
import { PosixBackend } from "../../../src/backends/posix/posix-backend.ts";
import type { IntentLog } from "../../../src/system/intent-log.ts";
import { processIdentityOf } from "../../../src/system/process-identity.ts";
import { segmentText, withRunningProcess } from "../../support/intent-segments.ts";
import { makeTempDir, removeTempDir } from "../../support/tmp.ts";

const CONTROL = ".docker-quobyte-plugin";
/** A checkpoint delay no test waits for: the log holds every intent until close. */
const HOLD = 600_000;

function readyRecord(createdAt: string, options: Record<string, string> = {}) {
  return { version: 1, createdAt, options, state: "ready" };
}

/** Polls `condition` until it holds or `ms` pass; returns whether it held. */
async function eventually(condition: () => boolean, ms = 5000): Promise<boolean> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) return false;
    await Bun.sleep(25);
  }
  return true;
}

describe("PosixBackend with its intent log (local scope, local root)", () => {
  let dir = "";
  let root = "";
  let opened: PosixBackend[] = [];
  let warnings: string[] = [];

  const journalDir = () => join(root, CONTROL, "journal");
  const trashDir = () => join(root, CONTROL, "trash");
  const recordPath = (name: string) => join(root, CONTROL, "volumes", name);
  const segments = () => readdirSync(journalDir()).sort();
  const readRecord = (name: string): unknown => JSON.parse(readFileSync(recordPath(name), "utf8"));
  const writeRecord = (name: string, record: unknown) => writeFile(recordPath(name), `${JSON.stringify(record)}\n`);
  const names = async (backend: PosixBackend) => (await backend.list()).map((volume) => volume.name).sort();

  /** An initialised backend on `root`; closed after the test. */
  /** `checkpointDelayMs` HOLD keeps the log as it is until close, for a test that copies it. */
  async function open(bootId?: string, checkpointDelayMs?: number, scope: "local" | "global" = "local"): Promise<PosixBackend> {
    const backend = new PosixBackend({ root, scope, bootId, checkpointDelayMs, warn: (message) => warnings.push(message) });
    opened.push(backend);
    await backend.init();
    return backend;
  }

  /** Prepares the control directories as a previous start would have made them. */
  async function prepareRoot(): Promise<void> {
    await mkdir(join(root, CONTROL, "volumes"), { recursive: true });
    await mkdir(journalDir(), { recursive: true, mode: 0o700 });
  }

  /** A volume `name` on disk: its directory holding `file` with `text`, and its ready record. */
  async function volumeOnDisk(name: string, createdAt: string, file: string, text: string): Promise<void> {
    await mkdir(join(root, name));
    await writeFile(join(root, name, file), text);
    await writeRecord(name, readyRecord(createdAt));
  }

  /** Runs `use` while volume `name`'s directory is immutable: it can be neither emptied, deleted nor moved. */
  async function whileImmutable(name: string, use: () => Promise<void>): Promise<void> {
    const chattr = (flag: string) => Bun.spawnSync(["chattr", flag, join(root, name)]);
    expect(chattr("+i").exitCode).toBe(0);
    try {
      await use();
    } finally {
      chattr("-i");
    }
  }

  beforeEach(async () => {
    dir = await makeTempDir("dqp-posix-journal-");
    root = join(dir, "root");
    opened = [];
    warnings = [];
  });

  afterEach(async () => {
    for (const backend of opened) await backend.close();
    await removeTempDir(dir);
  });

  test("acknowledged work survives a power cut: a replay after another boot makes what the log says", async () => {
    const first = await open(undefined, HOLD);
    await first.create("a", {});
    await first.create("b", { mode: "0750" });
    await first.remove("b");
    await first.create("c", {});
    await writeFile(join(root, "a", "data.txt"), "kept");

    // What the log holds before its checkpoint (about a second after the first append).
    const saved = new Map<string, string>();
    for (const file of segments()) saved.set(file, readFileSync(join(journalDir(), file), "utf8"));
    expect(saved.size).toBeGreaterThan(0);
    const intents = [...saved.values()].flatMap((text) =>
      text
        .trimEnd()
        .split("\n")
        .slice(1)
        .map((line) => JSON.parse(line) as { op: string; name: string; meta?: { createdAt: string; options: Record<string, string> }; createdAt?: string }),
    );
    expect(intents.map((intent) => `${intent.op} ${intent.name}`)).toEqual(["create a", "create b", "remove b", "create c"]);
    const createdA = intents[0]?.meta?.createdAt ?? "";
    const createdB = intents[1]?.meta?.createdAt ?? "";
    const createdC = intents[3]?.meta?.createdAt ?? "";
    expect(intents[1]?.meta?.options).toEqual({ mode: "0750" });
    expect(intents[2]?.createdAt).toBe(createdB);
    expect(new Set([createdA, createdB, createdC]).size).toBe(3);
    // Records wait for the checkpoint: until then the log and the index hold them.
    expect(existsSync(recordPath("a"))).toBe(false);
    expect(await names(first)).toEqual(["a", "c"]);

    // A clean close: the checkpoint writes the records, syncs everything and deletes the segments.
    await first.close();
    expect(segments()).toEqual([]);
    expect(readRecord("a")).toEqual(readyRecord(createdA));
    expect(existsSync(recordPath("b"))).toBe(false);

    // What a power cut may have left instead: the synced log, and only some unsynced effects.
    for (const [file, text] of saved) await writeFile(join(journalDir(), file), text);
    await unlink(recordPath("a"));
    await unlink(recordPath("c"));
    await rmdir(join(root, "c"));
    await mkdir(join(root, "b"));
    await writeRecord("b", readyRecord(createdB, { mode: "0750" }));

    const second = await open("another-boot");
    expect(await names(second)).toEqual(["a", "c"]);
    expect(await readFile(join(root, "a", "data.txt"), "utf8")).toBe("kept");
    const c = await stat(join(root, "c"));
    expect(c.isDirectory()).toBe(true);
    expect(c.mode & 0o777).toBe(0o755);
    expect(await readdir(join(root, "c"))).toEqual([]);
    expect(existsSync(join(root, "b"))).toBe(false);
    expect(existsSync(recordPath("b"))).toBe(false);
    expect(readRecord("a")).toEqual(readyRecord(createdA));
    expect(readRecord("c")).toEqual(readyRecord(createdC));
    expect((await second.inspect("a"))?.createdAt).toBe(createdA);
    expect((await second.inspect("c"))?.createdAt).toBe(createdC);
    expect(await second.inspect("b")).toBeUndefined();
    expect(segments()).toEqual([]);
    // b's data went into the trash, which is emptied in the background.
    expect(await eventually(() => readdirSync(trashDir()).length === 0)).toBe(true);
    expect(warnings).toEqual([]);
    await second.close();

    // A second start finds nothing to replay and changes nothing.
    const rootBefore = (await readdir(root)).sort();
    const recordsBefore = (await readdir(join(root, CONTROL, "volumes"))).sort();
    const third = await open("another-boot");
    expect(await names(third)).toEqual(["a", "c"]);
    expect((await readdir(root)).sort()).toEqual(rootBefore);
    expect((await readdir(join(root, CONTROL, "volumes"))).sort()).toEqual(recordsBefore);
    expect(readRecord("a")).toEqual(readyRecord(createdA));
    expect(readRecord("c")).toEqual(readyRecord(createdC));
    expect(await readFile(join(root, "a", "data.txt"), "utf8")).toBe("kept");
    expect(segments()).toEqual([]);
    expect(warnings).toEqual([]);
  });

  test("a Create whose intent is in the log is finished at the next start, in the same boot too (acknowledged or not)", async () => {
    await prepareRoot();
    await writeFile(join(journalDir(), "1.log"), segmentText([{ op: "create", name: "x", meta: readyRecord("2024-01-01T00:00:00.000Z", { mode: "0750" }) }]));
    const backend = await open();
    expect((await stat(join(root, "x"))).mode & 0o7777).toBe(0o750);
    expect(readRecord("x")).toEqual(readyRecord("2024-01-01T00:00:00.000Z", { mode: "0750" }));
    expect(await names(backend)).toEqual(["x"]);
    expect((await backend.inspect("x"))?.createdAt).toBe("2024-01-01T00:00:00.000Z");
    expect(segments()).toEqual([]);
    expect(warnings).toEqual([]);
  });

  test("a Create interrupted over a directory holding data adopts the data, as a finished one would", async () => {
    await prepareRoot();
    await mkdir(join(root, "x"));
    await writeFile(join(root, "x", "adopted.txt"), "data");
    await writeFile(join(journalDir(), "1.log"), segmentText([{ op: "create", name: "x", meta: readyRecord("2024-01-01T00:00:00.000Z") }]));
    const backend = await open();
    expect(await readFile(join(root, "x", "adopted.txt"), "utf8")).toBe("data");
    expect(readRecord("x")).toEqual(readyRecord("2024-01-01T00:00:00.000Z"));
    expect(await names(backend)).toEqual(["x"]);
    expect(segments()).toEqual([]);
  });

  test("a later life's data survives a replay of its name's earlier Create and Remove (no record written yet)", async () => {
    const first = await open(undefined, HOLD);
    await first.create("z", {});
    await first.remove("z");
    await first.create("z", {});
    await writeFile(join(root, "z", "data.txt"), "second life");
    const saved = segments().map((file) => [file, readFileSync(join(journalDir(), file), "utf8")] as const);
    expect(saved.length).toBeGreaterThan(0);
    // The writer dies before its checkpoint: the log is all there is of either life.
    expect(existsSync(recordPath("z"))).toBe(false);
    await first.close();
    await unlink(recordPath("z"));
    for (const [file, text] of saved) await writeFile(join(journalDir(), file), text);

    const second = await open();
    expect(await names(second)).toEqual(["z"]);
    expect(await readFile(join(root, "z", "data.txt"), "utf8")).toBe("second life");
    const created = saved.flatMap(([, text]) => text.trimEnd().split("\n").slice(1)).map((line) => JSON.parse(line) as { op: string; meta?: { createdAt: string } });
    expect((readRecord("z") as { createdAt: string }).createdAt).toBe(created.at(-1)?.meta?.createdAt ?? "");
    expect(segments()).toEqual([]);
    expect(warnings).toEqual([]);
  });

  test("same boot: a Remove interrupted after its intent is finished", async () => {
    const first = await open();
    await first.create("y", {});
    await first.close();
    const createdAt = (readRecord("y") as { createdAt: string }).createdAt;
    await writeFile(join(journalDir(), "1.log"), segmentText([{ op: "remove", name: "y", createdAt }]));

    const second = await open();
    expect(await names(second)).toEqual([]);
    expect(await second.inspect("y")).toBeUndefined();
    expect(existsSync(join(root, "y"))).toBe(false);
    expect(existsSync(recordPath("y"))).toBe(false);
    expect(segments()).toEqual([]);
    expect(await eventually(() => readdirSync(trashDir()).length === 0)).toBe(true);
    expect(warnings).toEqual([]);
  });

  test("same boot: a Remove of an older life of the name leaves the current volume alone", async () => {
    const first = await open();
    await first.create("y", {});
    await writeFile(join(root, "y", "data.txt"), "mine");
    await first.close();
    const record = readRecord("y") as { createdAt: string };
    expect(record.createdAt).not.toBe("2000-01-01T00:00:00.000Z");
    await writeFile(join(journalDir(), "1.log"), segmentText([{ op: "remove", name: "y", createdAt: "2000-01-01T00:00:00.000Z" }]));

    const second = await open();
    expect(await names(second)).toEqual(["y"]);
    expect(await readFile(join(root, "y", "data.txt"), "utf8")).toBe("mine");
    expect(readRecord("y")).toEqual(record);
    expect(segments()).toEqual([]);
  });

  test("a Create or Remove whose intent was written but reported failed is not carried out by a replay", async () => {
    const first = await open(undefined, HOLD);
    await first.create("kept", {});
    // The append writes its line, then its sync reports an error (a failing disk).
    const journal = (first as unknown as { journal: IntentLog<PosixIntent> }).journal;
    const append = journal.append.bind(journal);
    journal.append = async (entry) => {
      (await append(entry)).done();
      throw new Error("fdatasync: EIO");
    };
    await expect(first.create("failed", {})).rejects.toThrow("cannot record the intent to create");
    await expect(first.remove("kept")).rejects.toThrow("cannot record the intent to remove");
    journal.append = append;
    expect(await names(first)).toEqual(["kept"]);
    // The writer dies before its checkpoint: what the log holds is replayed.
    const saved = segments().map((file) => [file, readFileSync(join(journalDir(), file), "utf8")] as const);
    const ops = saved.flatMap(([, text]) => text.trimEnd().split("\n").slice(1)).map((line) => JSON.parse(line) as { op: string; name: string });
    expect(ops.map((op) => `${op.op} ${op.name}`)).toEqual(["create kept", "create failed", "cancel failed", "remove kept", "cancel kept"]);
    await first.close();
    for (const [file, text] of saved) await writeFile(join(journalDir(), file), text);

    const second = await open();
    expect(await names(second)).toEqual(["kept"]);
    expect(existsSync(join(root, "failed"))).toBe(false);
    expect(existsSync(join(root, "kept"))).toBe(true);
    expect(segments()).toEqual([]);
  });

  test("a Create killed between its mkdir and its chmod is finished with the documented mode, not the umask's", async () => {
    await prepareRoot();
    await mkdir(join(root, "m"), { mode: 0o700 });
    await writeFile(join(journalDir(), "1.log"), segmentText([{ op: "create", name: "m", meta: readyRecord("2024-01-01T00:00:00.000Z") }]));
    const backend = await open();
    expect(await names(backend)).toEqual(["m"]);
    expect((await stat(join(root, "m"))).mode & 0o7777).toBe(0o755);
  });

  test("intents whose replay failed are carried to the next start, never replayed over later lives of their names", async () => {
    await prepareRoot();
    const old = "2024-01-01T00:00:00.000Z";
    // y cannot become a volume while a file sits at its path: its step fails at every start.
    await writeFile(join(root, "y"), "not a directory");
    await writeFile(
      join(journalDir(), "1.log"),
      segmentText([
        { op: "create", name: "x", meta: readyRecord(old, { mode: "0700" }) },
        { op: "create", name: "z", meta: readyRecord(old) },
        { op: "create", name: "y", meta: readyRecord(old) },
      ]),
    );
    const first = await open();
    expect(warnings.some((warning) => warning.includes("cannot redo-create y yet"))).toBe(true);
    expect(await names(first)).toEqual(["x", "z"]);
    // Later lives: x created anew with other options and data, z removed.
    await first.remove("x");
    await first.create("x", { mode: "0750" });
    await writeFile(join(root, "x", "data.txt"), "second life");
    await first.remove("z");
    await first.close();
    const x = readRecord("x") as { createdAt: string; options: Record<string, string> };
    expect(x.options).toEqual({ mode: "0750" });
    expect(segments().length).toBe(1);
    const carried = readFileSync(join(journalDir(), segments()[0] ?? ""), "utf8");
    expect(carried.trimEnd().split("\n").slice(1).map((line) => (JSON.parse(line) as { name: string }).name)).toEqual(["y"]);

    // The carrying process is gone: the next start replays only y's intent.
    warnings = [];
    await writeFile(join(journalDir(), segments()[0] ?? ""), carried.replace(/"writer":"[^"]*"/, '"writer":"999999999:0"'));
    const second = await open();
    expect(await names(second)).toEqual(["x"]);
    expect(readRecord("x")).toEqual(x);
    expect((await stat(join(root, "x"))).mode & 0o7777).toBe(0o750);
    expect(await readFile(join(root, "x", "data.txt"), "utf8")).toBe("second life");
    expect(existsSync(join(root, "z"))).toBe(false);
    expect(warnings.some((warning) => warning.includes("cannot redo-create y yet"))).toBe(true);
    await second.close();

    // Once the file is out of the way, the carried Create is carried out and nothing is left.
    await unlink(join(root, "y"));
    warnings = [];
    const carriedAgain = segments()[0] ?? "";
    await writeFile(join(journalDir(), carriedAgain), readFileSync(join(journalDir(), carriedAgain), "utf8").replace(/"writer":"[^"]*"/, '"writer":"999999999:0"'));
    const third = await open();
    expect(await names(third)).toEqual(["x", "y"]);
    expect(segments()).toEqual([]);
    expect(warnings).toEqual([]);
  });

  test("a root that does not use the log (global scope) still takes a carried name out when the name is created or removed", async () => {
    await prepareRoot();
    await writeFile(join(root, "y"), "not a directory");
    await writeFile(join(journalDir(), "1.log"), segmentText([{ op: "create", name: "y", meta: readyRecord("2024-01-01T00:00:00.000Z") }]));
    const first = await open(undefined, undefined, "global");
    expect(warnings.some((warning) => warning.includes("cannot redo-create y yet"))).toBe(true);
    expect(segments().length).toBe(1);
    await unlink(join(root, "y"));
    await first.create("y", {});
    await first.remove("y");
    expect(segments()).toEqual([]);
    await first.close();
    const second = await open(undefined, undefined, "global");
    expect(await names(second)).toEqual([]);
    expect(existsSync(join(root, "y"))).toBe(false);
  });

  test("a replayed Remove that cannot be finished hides the volume behind a removing record; the next start finishes it", async () => {
    await prepareRoot();
    const createdAt = "2024-01-01T00:00:00.000Z";
    await volumeOnDisk("x", createdAt, "data.txt", "going");
    await writeFile(join(journalDir(), "1.log"), segmentText([{ op: "remove", name: "x", createdAt }]));
    await whileImmutable("x", async () => {
      const first = await open();
      expect(warnings.some((warning) => warning.includes("cannot finish-remove x yet (the next start retries)"))).toBe(true);
      expect(await names(first)).toEqual([]);
      expect(await first.inspect("x")).toBeUndefined();
      expect((readRecord("x") as { state: string }).state).toBe("removing");
      expect(segments().length).toBe(1);
      await first.close();
    });
    const second = await open();
    expect(await names(second)).toEqual([]);
    expect(existsSync(join(root, "x"))).toBe(false);
    expect(existsSync(recordPath("x"))).toBe(false);
  });

  test("a replayed Remove that cannot be finished keeps the next life's Create from adopting the removed life's data", async () => {
    await prepareRoot();
    const t1 = "2024-01-01T00:00:00.000Z";
    const t2 = "2024-01-02T00:00:00.000Z";
    await volumeOnDisk("x", t1, "data.txt", "first life");
    // The first life's Remove never reached the disk; the second life's Create is logged after it.
    await writeFile(
      join(journalDir(), "1.log"),
      segmentText([
        { op: "remove", name: "x", createdAt: t1 },
        { op: "create", name: "x", meta: readyRecord(t2) },
      ]),
    );
    await whileImmutable("x", async () => {
      const first = await open();
      expect(await names(first)).toEqual([]);
      expect((readRecord("x") as { state: string; createdAt: string }).createdAt).toBe(t1);
      await first.close();
    });
    const second = await open();
    expect(await names(second)).toEqual(["x"]);
    expect((await second.inspect("x"))?.createdAt).toBe(t2);
    expect(await readdir(join(root, "x"))).toEqual([]);
    expect(segments()).toEqual([]);
  });

  /** A segment holding a Create of `name` and its cancellation. */
  const writeCancelledCreate = (name: string, createdAt: string) =>
    writeFile(
      join(journalDir(), "1.log"),
      segmentText([
        { op: "create", name, meta: readyRecord(createdAt) },
        { op: "cancel", name, of: "create", createdAt },
      ]),
    );

  test("a cancelled Create leaves no volume after a redo", async () => {
    await prepareRoot();
    const createdAt = "2024-01-01T00:00:00.000Z";
    await writeCancelledCreate("t", createdAt);
    const backend = await open("another-boot");
    expect(await names(backend)).toEqual([]);
    expect(existsSync(join(root, "t"))).toBe(false);
    expect(existsSync(recordPath("t"))).toBe(false);
    expect(segments()).toEqual([]);
    expect(warnings).toEqual([]);
  });

  test("a cancelled Create whose record stayed loses its record after a redo; its data stays", async () => {
    await prepareRoot();
    const createdAt = "2024-01-01T00:00:00.000Z";
    await volumeOnDisk("t", createdAt, "adopted.txt", "data");
    await writeCancelledCreate("t", createdAt);
    const backend = await open("another-boot");
    expect(await names(backend)).toEqual([]);
    expect(existsSync(recordPath("t"))).toBe(false);
    expect(await readFile(join(root, "t", "adopted.txt"), "utf8")).toBe("data");
    expect(segments()).toEqual([]);
  });

  test("segments of another host or of a running writer are left in place and not replayed", async () => {
    await withRunningProcess(async (alive, pid, stop) => {
      expect(alive).toBeDefined();
      await prepareRoot();
      const meta = readyRecord("2024-01-01T00:00:00.000Z");
      for (const name of ["live", "elsewhere", "dead"]) await mkdir(join(root, name));
      const live = segmentText([{ op: "create", name: "live", meta }], { writer: alive });
      const elsewhere = segmentText([{ op: "create", name: "elsewhere", meta }], { host: "another-host" });
      await writeFile(join(journalDir(), "1.log"), live);
      await writeFile(join(journalDir(), "2.log"), elsewhere);
      // A dead writer's segment beside them is replayed: the replay did run.
      await writeFile(join(journalDir(), "3.log"), segmentText([{ op: "create", name: "dead", meta }]));

      const backend = await open();
      expect(readRecord("dead")).toEqual(meta);
      expect(existsSync(recordPath("live"))).toBe(false);
      expect(existsSync(recordPath("elsewhere"))).toBe(false);
      expect(existsSync(join(root, "live"))).toBe(true);
      expect(existsSync(join(root, "elsewhere"))).toBe(true);
      expect(segments()).toEqual(["1.log", "2.log"]);
      // Its own segments come after them, and its checkpoints leave them alone.
      await backend.create("v", {});
      expect(segments()).toEqual(["1.log", "2.log", "4.log"]);
      await backend.close();
      expect(segments()).toEqual(["1.log", "2.log"]);
      expect(readFileSync(join(journalDir(), "1.log"), "utf8")).toBe(live);
      expect(readFileSync(join(journalDir(), "2.log"), "utf8")).toBe(elsewhere);
      expect(existsSync(join(root, "live"))).toBe(true);
      expect(existsSync(join(root, "elsewhere"))).toBe(true);

      // Once its writer is gone, the running writer's segment is one to replay; the other host's still is not.
      await stop();
      expect(await eventually(() => processIdentityOf(pid) !== alive)).toBe(true);
      const after = await open();
      expect(readRecord("live")).toEqual(meta);
      expect(existsSync(recordPath("elsewhere"))).toBe(false);
      expect(segments()).toEqual(["2.log"]);
      expect(await names(after)).toEqual(["dead", "live", "v"]);
    });
  });

  test("the journal empties itself after Create and Remove, and close leaves it empty", async () => {
    const backend = await open();
    await backend.create("f1", {});
    // The intent is in a segment until the checkpoint, about a second later; so is the record.
    expect(segments().length).toBeGreaterThan(0);
    expect(existsSync(recordPath("f1"))).toBe(false);
    await backend.remove("f1");
    await backend.create("f2", {});
    expect(await eventually(() => segments().length === 0)).toBe(true);
    expect(existsSync(join(root, "f1"))).toBe(false);
    expect(existsSync(recordPath("f1"))).toBe(false);
    expect(existsSync(join(root, "f2"))).toBe(true);
    expect((readRecord("f2") as { state: string }).state).toBe("ready");

    await backend.create("f3", {});
    await backend.remove("f2");
    expect(segments().length).toBeGreaterThan(0);
    await backend.close();
    expect(segments()).toEqual([]);
    expect(existsSync(join(root, "f2"))).toBe(false);
    expect(existsSync(recordPath("f2"))).toBe(false);
    expect((readRecord("f3") as { state: string }).state).toBe("ready");
    expect(warnings).toEqual([]);
  });

  test("checkpoints that fail show in health and warnings, keep the segment, and heal once the disk lets them", async () => {
    const backend = await open();
    // The trash is one of the directories a checkpoint syncs: a dangling symlink in its
    // place makes that fsync fail, as a failing disk would.
    await rename(trashDir(), `${trashDir()}.away`);
    await symlink(join(dir, "nowhere"), trashDir());
    await backend.create("h1", {});
    expect(await eventually(() => warnings.some((w) => w.includes("checkpoint of the intent log")))).toBe(true);
    const failing = await backend.health();
    expect(failing.state).toBe("live");
    expect(failing.detail).toContain("intent log: checkpoints failing since");
    expect(segments().length).toBe(1);
    // The volume itself was made and stays usable meanwhile.
    expect(await names(backend)).toEqual(["h1"]);

    await unlink(trashDir());
    await rename(`${trashDir()}.away`, trashDir());
    expect(await eventually(() => segments().length === 0)).toBe(true);
    expect((await backend.health()).detail).not.toContain("intent log");
  });
});
