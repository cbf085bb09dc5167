import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { appendFileSync, chmodSync, closeSync, existsSync, linkSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { MountRefs, type MountRefsOptions } from "../../../src/core/mount-refs.ts";
import { currentBootId } from "../../../src/system/process-identity.ts";
import { makeTempDir, removeTempDir } from "../../support/tmp.ts";

describe("MountRefs", () => {
  let dir: string;
  let stateDir: string;
  const open: MountRefs[] = [];

  function openRefs(options: Partial<MountRefsOptions> = {}): MountRefs {
    const refs = MountRefs.open({ stateDir, bootId: "boot-1", ...options });
    open.push(refs);
    return refs;
  }

  const legacyDatabase = (bootId: string) => legacyDatabaseIn(stateDir, bootId);

  function closeRefs(refs: MountRefs): void {
    refs.close();
    open.splice(open.indexOf(refs), 1);
  }

  beforeEach(async () => {
    dir = await makeTempDir("dqp-refs-");
    stateDir = join(dir, "state");
  });

  afterEach(async () => {
    for (const refs of open.splice(0)) refs.close();
    await removeTempDir(dir);
  });

  test("counts mounts per (volume, mount ID) and sums them per volume", () => {
    const refs = openRefs();
    expect(refs.count("v")).toBe(0);
    refs.add("v", "id1");
    refs.add("v", "id1");
    refs.add("v", "id2");
    refs.add("w", "id1");
    expect(refs.count("v")).toBe(3);
    expect(refs.count("w")).toBe(1);
    expect(refs.snapshot()).toEqual(new Map([["v", 3], ["w", 1]]));

    expect(refs.release("v", "id1")).toBe(true);
    expect(refs.count("v")).toBe(2);
    expect(refs.release("v", "id1")).toBe(true);
    expect(refs.release("v", "id1")).toBe(false);
    expect(refs.count("v")).toBe(1);
    expect(refs.release("v", "id2")).toBe(true);
    expect(refs.count("v")).toBe(0);
    expect(refs.snapshot()).toEqual(new Map([["w", 1]]));
  });

  test("releasing an unknown volume or mount ID returns false and changes nothing", () => {
    const refs = openRefs();
    refs.add("v", "id1");
    expect(refs.release("v", "other")).toBe(false);
    expect(refs.release("unknown", "id1")).toBe(false);
    expect(refs.count("v")).toBe(1);
    expect(refs.count("unknown")).toBe(0);
    expect(refs.snapshot()).toEqual(new Map([["v", 1]]));
  });

  test("the same mount ID on different volumes is counted separately", () => {
    const refs = openRefs();
    refs.add("a", "same");
    refs.add("b", "same");
    expect(refs.release("a", "same")).toBe(true);
    expect(refs.count("a")).toBe(0);
    expect(refs.count("b")).toBe(1);
  });

  test("counts survive close and reopen with the same boot id", () => {
    const first = openRefs();
    first.add("v", "id1");
    first.add("v", "id1");
    first.add("v", "id2");
    first.add("gone", "x");
    first.release("gone", "x");
    closeRefs(first);

    const second = openRefs();
    expect(second.count("v")).toBe(3);
    expect(second.snapshot()).toEqual(new Map([["v", 3]]));
    expect(second.release("v", "id1")).toBe(true);
    expect(second.release("v", "id1")).toBe(true);
    expect(second.release("v", "id1")).toBe(false);
    closeRefs(second);

    const third = openRefs();
    expect(third.snapshot()).toEqual(new Map([["v", 1]]));
  });

  test("counts survive a process killed by SIGKILL without closing the database", async () => {
    const module = join(import.meta.dir, "../../../src/core/mount-refs.ts");
    const script = `const { MountRefs } = await import(${JSON.stringify(module)});
      const refs = MountRefs.open({ stateDir: ${JSON.stringify(stateDir)}, bootId: "boot-1" });
      refs.add("v", "id1");
      refs.add("v", "id2");
      refs.release("v", "id2");
      process.kill(process.pid, "SIGKILL");`;
    const crashed = Bun.spawn([process.execPath, "-e", script], { stdout: "ignore", stderr: "pipe" });
    expect(await crashed.exited).not.toBe(0);
    expect(crashed.signalCode).toBe("SIGKILL");
    const after = openRefs();
    expect(after.snapshot()).toEqual(new Map([["v", 1]]));
  });

  test("a state directory another plugin holds is refused as in use, never quarantined", () => {
    const owner = openRefs();
    owner.add("v", "id1");
    const started = performance.now();
    expect(() => MountRefs.open({ stateDir, bootId: "boot-1" })).toThrow(/in use by another process/);
    // It waited for the owner to let go first (a plugin that is still exiting).
    expect(performance.now() - started).toBeGreaterThan(4000);
    expect(readdirSync(stateDir).filter((f) => f.includes("corrupt"))).toEqual([]);
    expect(owner.count("v")).toBe(1);
    owner.add("v", "id2");
    closeRefs(owner);
    expect(openRefs().count("v")).toBe(2);
  }, 20_000);

  test("a different boot id drops every reference", () => {
    const before = openRefs({ bootId: "boot-1" });
    before.add("v", "id1");
    before.add("w", "id2");
    closeRefs(before);

    const rebooted = openRefs({ bootId: "boot-2" });
    expect(rebooted.snapshot().size).toBe(0);
    expect(rebooted.count("v")).toBe(0);
    expect(rebooted.release("v", "id1")).toBe(false);
    rebooted.add("v", "new");
    closeRefs(rebooted);

    // The new boot id was stored: reopening in the same boot keeps the new refs.
    const same = openRefs({ bootId: "boot-2" });
    expect(same.snapshot()).toEqual(new Map([["v", 1]]));
  });

  test("the boot id defaults to the kernel's", () => {
    expect(currentBootId()).toBe(readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim());
    const first = MountRefs.open({ stateDir });
    first.add("v", "id");
    first.close();
    const second = openRefs({ bootId: currentBootId() });
    expect(second.count("v")).toBe(1);
  });

  test("creates the state directory 0700 and its files 0600; the lock file names its holder", () => {
    const refs = openRefs();
    refs.add("v", "id");
    expect(statSync(stateDir).mode & 0o777).toBe(0o700);
    const files = readdirSync(stateDir).sort();
    expect(files).toEqual(["mounts.db", "mounts.slots", "owner.lock"]);
    // An empty database: only its lock, for older releases (see below).
    expect(statSync(join(stateDir, "mounts.db")).size).toBe(0);
    for (const file of files) {
      expect({ file, mode: statSync(join(stateDir, file)).mode & 0o777 }).toEqual({ file, mode: 0o600 });
    }
    expect(readFileSync(join(stateDir, "owner.lock"), "utf8")).toBe(`${process.pid}\n`);
  });

  test("resets a lock file with loose permissions to 0600 and replaces a stale holder's pid", () => {
    const first = openRefs();
    closeRefs(first);
    const file = join(stateDir, "owner.lock");
    chmodSync(file, 0o644);
    writeFileSync(file, "4000000000 from a long gone process\n");
    openRefs();
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, "utf8")).toBe(`${process.pid}\n`);
  });

  test("a symlink planted as the lock file is refused, never followed", () => {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    const elsewhere = join(dir, "elsewhere");
    writeFileSync(elsewhere, "not ours\n");
    symlinkSync(elsewhere, join(stateDir, "owner.lock"));
    expect(() => openRefs()).toThrow(/owner\.lock/);
    expect(readFileSync(elsewhere, "utf8")).toBe("not ours\n");
  });

  test("a lock held in another process is waited for, then taken once that process exits", async () => {
    const module = join(import.meta.dir, "../../../src/core/mount-refs.ts");
    const script = `const { MountRefs } = await import(${JSON.stringify(module)});
      MountRefs.open({ stateDir: ${JSON.stringify(stateDir)}, bootId: "boot-1" }).add("v", "held");
      console.log("ready");
      setTimeout(() => process.kill(process.pid, "SIGKILL"), 1500);
      await new Promise(() => {});`;
    const holder = Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "pipe" });
    const first = await holder.stdout.getReader().read();
    expect(new TextDecoder().decode(first.value)).toContain("ready");
    const started = performance.now();
    // The holder is killed without closing anything: the kernel lets go of its lock.
    const refs = openRefs();
    // The holder dies 1.5 s after it said "ready"; this open began well within that.
    expect(performance.now() - started).toBeGreaterThan(500);
    expect(refs.count("v")).toBe(1);
    await holder.exited;
  }, 20_000);

  test("a corrupt mounts.db of an older release is quarantined and the start goes on with no references", () => {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    const garbage = "this is not an SQLite database\n".repeat(200);
    writeFileSync(join(stateDir, "mounts.db"), garbage);
    const reports: { from: string; to: string; cause: unknown }[] = [];
    const refs = openRefs({ onQuarantine: (from, to, cause) => reports.push({ from, to, cause }) });
    expect(reports).toHaveLength(1);
    const report = reports[0]!;
    expect(report.from).toBe(join(stateDir, "mounts.db"));
    expect(report.to).toMatch(/\/mounts\.db\.corrupt-\d+$/);
    expect(readFileSync(report.to, "utf8")).toBe(garbage);
    expect(refs.snapshot().size).toBe(0);
    refs.add("w", "fresh");
    closeRefs(refs);
    expect(openRefs().snapshot()).toEqual(new Map([["w", 1]]));
    expect(reports).toHaveLength(1);
  });

  test("a corrupt mounts.db is quarantined even without an onQuarantine callback", () => {
    mkdirSync(stateDir, { recursive: true });
    writeFileSync(join(stateDir, "mounts.db"), Buffer.alloc(8192, 0xab));
    const refs = openRefs();
    refs.add("v", "id");
    expect(refs.count("v")).toBe(1);
    expect(readdirSync(stateDir).some((f) => f.startsWith("mounts.db.corrupt-"))).toBe(true);
  });

  for (const release of ["with", "before"] as const) {
    test(`an older release (${release} the slot table) that still holds mounts.db is refused as in use; once it exits, its references are taken over and the database emptied`, () => {
      mkdirSync(stateDir, { recursive: true, mode: 0o700 });
      if (release === "with") {
        const previous = openRefs();
        previous.add("v", "id1");
        closeRefs(previous);
      }
      const older = legacyDatabase("boot-1");
      // What an older release held for its lifetime.
      older.exec("PRAGMA locking_mode = EXCLUSIVE; PRAGMA journal_mode = WAL;");
      older.exec("INSERT OR REPLACE INTO meta (key, value) VALUES ('owner_pid', '1')");
      try {
        expect(() => MountRefs.open({ stateDir, bootId: "boot-1" })).toThrow(/mounts\.db: it is in use by another process/);
        expect(readdirSync(stateDir).filter((f) => f.includes("corrupt"))).toEqual([]);
      } finally {
        older.close();
      }
      // The slot table, once there, is what counts; before it, the database's references.
      expect(openRefs().snapshot()).toEqual(release === "with" ? new Map([["v", 1]]) : new Map([["v", 3], ["w", 1]]));
      expect(readdirSync(stateDir).sort()).toEqual(["mounts.db", "mounts.slots", "owner.lock"]);
      expect(statSync(join(stateDir, "mounts.db")).size).toBe(0);
    }, 20_000);
  }

  test("an older release started while this one runs finds SQLite's lock on mounts.db taken and refuses", async () => {
    const refs = openRefs();
    refs.add("v", "id");
    // What releases before owner.lock did first at their start (MountRefs.openLock), in another process.
    const older = `const { Database } = require("bun:sqlite");
      const db = new Database(${JSON.stringify(join(stateDir, "mounts.db"))}, { create: true, strict: true });
      try {
        db.exec("PRAGMA busy_timeout = 200; PRAGMA locking_mode = EXCLUSIVE; PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;");
        db.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;");
        console.log("started");
      } catch (error) {
        console.log(error.code);
      }`;
    const run = async () => {
      const child = Bun.spawn([process.execPath, "-e", older], { stdout: "pipe", stderr: "pipe" });
      const said = (await new Response(child.stdout).text()).trim();
      await child.exited;
      return said;
    };
    expect(await run()).toBe("SQLITE_BUSY");
    expect(statSync(join(stateDir, "mounts.db")).size).toBe(0);
    // Another descriptor of the file opened and closed in this process leaves the lock alone.
    closeSync(openSync(join(stateDir, "mounts.db"), "r"));
    expect(await run()).toBe("SQLITE_BUSY");
    closeRefs(refs);
    expect(await run()).toBe("started");
  }, 20_000);

  test("a start refused at SQLite's lock leaves no slot table behind", async () => {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    // A writer in another process holding SQLite's lock on a still empty database.
    const holder = `const { Database } = require("bun:sqlite");
      const db = new Database(${JSON.stringify(join(stateDir, "mounts.db"))}, { create: true });
      db.exec("PRAGMA locking_mode = EXCLUSIVE; BEGIN IMMEDIATE;");
      console.log("holding");
      setTimeout(() => process.exit(0), 15_000);`;
    const child = Bun.spawn([process.execPath, "-e", holder], { stdout: "pipe", stderr: "pipe" });
    try {
      const first = await child.stdout.getReader().read();
      expect(new TextDecoder().decode(first.value)).toContain("holding");
      expect(statSync(join(stateDir, "mounts.db")).size).toBe(0);
      expect(() => MountRefs.open({ stateDir, bootId: "boot-1" })).toThrow(/mounts\.db: it is in use by another process/);
      expect(existsSync(join(stateDir, "mounts.slots"))).toBe(false);
    } finally {
      child.kill("SIGKILL");
      await child.exited;
    }
    expect(openRefs().snapshot().size).toBe(0);
  }, 30_000);

  test("an empty mounts.db (this release's, or an older one killed at its start) is never opened as a database", () => {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    writeFileSync(join(stateDir, "mounts.db"), "");
    writeFileSync(join(stateDir, "mounts.db-wal"), "not a log\n");
    const moved: string[] = [];
    const refs = openRefs({ onQuarantine: (_from, to) => moved.push(to) });
    expect(moved).toEqual([]);
    expect(refs.snapshot().size).toBe(0);
    expect(readFileSync(join(stateDir, "mounts.db-wal"), "utf8")).toBe("not a log\n");
  });

  test("an older release's database without its tables holds no references and is not reported as damaged", () => {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    const bare = new Database(join(stateDir, "mounts.db"), { create: true });
    bare.exec("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;");
    bare.close();
    const moved: string[] = [];
    const refs = openRefs({ onQuarantine: (_from, to) => moved.push(to) });
    expect(moved).toEqual([]);
    expect(refs.snapshot().size).toBe(0);
    expect(statSync(join(stateDir, "mounts.db")).size).toBe(0);
  });

  test("the lock does not pass to a child: once the holder dies, the next start takes it while the child still runs", async () => {
    const module = join(import.meta.dir, "../../../src/core/mount-refs.ts");
    const script = `const { MountRefs } = await import(${JSON.stringify(module)});
      MountRefs.open({ stateDir: ${JSON.stringify(stateDir)}, bootId: "boot-1" });
      const child = Bun.spawn(["sleep", "30"], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
      child.unref();
      console.log(String(child.pid));
      await new Promise(() => {});`;
    const holder = Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "pipe" });
    const first = await holder.stdout.getReader().read();
    const childPid = Number(new TextDecoder().decode(first.value).trim());
    expect(childPid).toBeGreaterThan(0);
    try {
      holder.kill("SIGKILL");
      await holder.exited;
      // The sleep the holder started (as mount.quobyte would be) is still there.
      expect(() => process.kill(childPid, 0)).not.toThrow();
      const started = performance.now();
      openRefs();
      expect(performance.now() - started).toBeLessThan(3000);
    } finally {
      process.kill(childPid, "SIGKILL");
    }
  }, 20_000);

  test("a lock file with a second name (a planted hard link) is refused, and the other file is left as it was", () => {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    const elsewhere = join(dir, "elsewhere");
    writeFileSync(elsewhere, "not ours\n", { mode: 0o644 });
    linkSync(elsewhere, join(stateDir, "owner.lock"));
    expect(() => openRefs()).toThrow(/owner\.lock is not a plain file of its own \(2 links\)/);
    expect(readFileSync(elsewhere, "utf8")).toBe("not ours\n");
    expect(statSync(elsewhere).mode & 0o777).toBe(0o644);
  });

  test("more pairs than the first table holds: the file grows and every count survives a reopen", () => {
    const refs = openRefs();
    const expected = new Map<string, number>();
    for (let i = 0; i < 300; i++) {
      const volume = `v${i % 37}`;
      refs.add(volume, `id-${i}`);
      if (i % 3 === 0) refs.add(volume, `id-${i}`);
      if (i % 5 === 0) refs.release(volume, `id-${i}`);
      expected.set(volume, (expected.get(volume) ?? 0) + (i % 3 === 0 ? 2 : 1) - (i % 5 === 0 ? 1 : 0));
    }
    for (const [volume, count] of expected) if (count === 0) expected.delete(volume);
    expect(refs.snapshot()).toEqual(expected);
    closeRefs(refs);
    expect(openRefs().snapshot()).toEqual(expected);
  });

  test("the longest volume name and mount ID fit, in any script", () => {
    const volume = "é".repeat(127); // 254 bytes
    const mountId = "\u{10348}".repeat(128) ; // 256 UTF-16 units, 512 bytes
    const wide = "\u20ac".repeat(256); // 256 units, 768 bytes
    const refs = openRefs();
    refs.add(volume, mountId);
    refs.add(volume, wide);
    closeRefs(refs);
    const reopened = openRefs();
    expect(reopened.count(volume)).toBe(2);
    expect(reopened.release(volume, mountId)).toBe(true);
    expect(reopened.release(volume, wide)).toBe(true);
  });

  test("a damaged slot table is quarantined as mounts.slots.corrupt-*, reported, and replaced by an empty one", () => {
    const first = openRefs();
    first.add("v", "id");
    closeRefs(first);
    const slots = join(stateDir, "mounts.slots");
    const damaged = readFileSync(slots);
    damaged.fill(0xab, 128, 140); // the first slot's words
    writeFileSync(slots, damaged);

    const moved: string[] = [];
    const refs = openRefs({ onQuarantine: (_from, to) => moved.push(to) });
    expect(moved).toHaveLength(1);
    expect(moved[0]).toMatch(/\/mounts\.slots\.corrupt-\d+$/);
    expect(readFileSync(moved[0]!).equals(damaged)).toBe(true);
    expect(refs.snapshot().size).toBe(0);
    refs.add("w", "fresh");
    closeRefs(refs);
    expect(openRefs().snapshot()).toEqual(new Map([["w", 1]]));
  });

  test("a growth cut short by a kill (a zero tail shorter than one slot) is dropped, every count kept", () => {
    const first = openRefs();
    first.add("v", "id");
    first.add("v", "id2");
    closeRefs(first);
    const slots = join(stateDir, "mounts.slots");
    const whole = statSync(slots).size;
    appendFileSync(slots, new Uint8Array(700));
    const moved: string[] = [];
    const refs = openRefs({ onQuarantine: (_from, to) => moved.push(to) });
    expect(moved).toEqual([]);
    expect(statSync(slots).size).toBe(whole);
    expect(refs.snapshot()).toEqual(new Map([["v", 2]]));
    closeRefs(refs);
  });

  test("a tail shorter than one slot that is not zeros is damage, not growth", () => {
    closeRefs(openRefs());
    appendFileSync(join(stateDir, "mounts.slots"), new Uint8Array(700).fill(7));
    const moved: string[] = [];
    closeRefs(openRefs({ onQuarantine: (_from, to) => moved.push(to) }));
    expect(moved).toHaveLength(1);
  });

  test("an empty slot table (what a power cut may leave) starts afresh without a quarantine", () => {
    closeRefs(openRefs());
    writeFileSync(join(stateDir, "mounts.slots"), "");
    const moved: string[] = [];
    const refs = openRefs({ onQuarantine: (_from, to) => moved.push(to) });
    expect(moved).toEqual([]);
    refs.add("v", "id");
    expect(refs.count("v")).toBe(1);
  });

  test("references an older release kept in mounts.db are moved into the slot table once, and the database emptied", () => {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    legacyDatabase("boot-1").close();
    const upgraded = openRefs();
    expect(upgraded.snapshot()).toEqual(new Map([["v", 3], ["w", 1]]));
    expect(readdirSync(stateDir).sort()).toEqual(["mounts.db", "mounts.slots", "owner.lock"]);
    expect(statSync(join(stateDir, "mounts.db")).size).toBe(0);
    upgraded.release("v", "id2");
    closeRefs(upgraded);
    expect(openRefs().snapshot()).toEqual(new Map([["v", 2], ["w", 1]]));
  });

  test("leftovers of the older database that cannot be deleted do not fail the start that moved its references", () => {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    legacyDatabase("boot-1").close();
    mkdirSync(join(stateDir, "mounts.db-shm"));
    const upgraded = openRefs();
    expect(upgraded.snapshot()).toEqual(new Map([["v", 3], ["w", 1]]));
    closeRefs(upgraded);
    // The next start looks at the database again, and imports nothing twice.
    rmSync(join(stateDir, "mounts.db-shm"), { recursive: true });
    expect(openRefs().snapshot()).toEqual(new Map([["v", 3], ["w", 1]]));
    expect(statSync(join(stateDir, "mounts.db")).size).toBe(0);
  });

  test("references an older release kept from another boot are not imported", () => {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    legacyDatabase("boot-0").close();
    expect(openRefs().snapshot().size).toBe(0);
  });

  test("a process killed at random moments while mounting and unmounting leaves a table that opens with its counts", async () => {
    const module = join(import.meta.dir, "../../../src/core/mount-refs.ts");
    // The child keeps volume "pinned" mounted once and churns others; it says when it runs.
    const script = `const { MountRefs } = await import(${JSON.stringify(module)});
      const refs = MountRefs.open({ stateDir: ${JSON.stringify(stateDir)}, bootId: "boot-1" });
      if (refs.count("pinned") === 0) refs.add("pinned", "p");
      console.log("ready");
      for (let i = 0; ; i++) {
        const volume = "v" + (i % 13), id = "id-" + (i % 29);
        refs.add(volume, id);
        if (i % 2 === 0) refs.release(volume, id);
      }`;
    for (let round = 0; round < 12; round++) {
      const child = Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "pipe" });
      const reader = child.stdout.getReader();
      const first = await reader.read();
      expect(new TextDecoder().decode(first.value)).toContain("ready");
      await Bun.sleep(5 + Math.floor(Math.random() * 40));
      child.kill("SIGKILL");
      await child.exited;
      const moved: string[] = [];
      const refs = openRefs({ onQuarantine: (_from, to) => moved.push(to) });
      expect(moved).toEqual([]);
      expect(refs.count("pinned")).toBe(1);
      for (const count of refs.snapshot().values()) expect(count).toBeGreaterThan(0);
      closeRefs(refs);
    }
  }, 60_000);

  test("close releases the state files: no descriptor to them stays open", () => {
    const refs = openRefs();
    refs.add("v", "id");
    expect(openDescriptorsUnder(stateDir)).toBeGreaterThan(0);
    closeRefs(refs);
    expect(openDescriptorsUnder(stateDir)).toBe(0);
  });
});

/** The database a release before the slot table kept in `dir`'s state: its schema and three pairs. */
function legacyDatabaseIn(stateDir: string, bootId: string): Database {
  const legacy = new Database(join(stateDir, "mounts.db"), { create: true });
  legacy.exec(
    "CREATE TABLE mounts (volume TEXT NOT NULL, mount_id TEXT NOT NULL, count INTEGER NOT NULL CHECK (count > 0), PRIMARY KEY (volume, mount_id)) WITHOUT ROWID;" +
      "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;" +
      "INSERT INTO mounts VALUES ('v', 'id1', 2), ('v', 'id2', 1), ('w', 'id1', 1);",
  );
  legacy.query("INSERT INTO meta VALUES ('boot_id', ?1)").run(bootId);
  return legacy;
}

/** How many of this process's file descriptors point into `dir`. */
function openDescriptorsUnder(dir: string): number {
  let count = 0;
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith(`${dir}/`)) count++;
    } catch {
      // the descriptor readdir itself used is gone already
    }
  }
  return count;
}
