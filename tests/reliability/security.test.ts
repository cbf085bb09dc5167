// File modes of the socket, state and metadata (under several umasks); no shell ever
// spawned (strace of every execve); symlinks planted in the root never followed out of it.

import { beforeEach, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmdirSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import {
  BINARY,
  childPids,
  CONTROL_DIR,
  type EngineConn,
  ensureStrace,
  errCode,
  isOk,
  must,
  type Outcome,
  PosixSuite,
  Rng,
  sendAll,
  serveArgv,
  suiteSeed,
  waitServing,
  withConn,
} from "./support.ts";
import { checkpointed } from "../support/intent-segments.ts";

const SEED = suiteSeed("security", 0x5ec0_0001);
const suite = new PosixSuite("dqp-sec-");
const { children } = suite;

function groupId(name: string): number {
  const line = readFileSync("/etc/group", "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${name}:`));
  if (!line) throw new Error(`group ${name} missing`);
  return Number(line.split(":")[2]);
}

function mode(path: string): string {
  return (lstatSync(path).mode & 0o7777).toString(8).padStart(4, "0");
}

async function ok(conn: EngineConn, method: string, body?: unknown): Promise<void> {
  const out = await must(conn, method, body);
  if (!isOk(out as Outcome)) throw new Error(`${method} ${JSON.stringify(body)}: ${out.text}`);
}

/** Everything under `path` (lstat, never following): type, mode, owner, size, content hash or link target. */
function snapshot(path: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (p: string) => {
    const info = lstatSync(p);
    const common = `${(info.mode & 0o7777).toString(8)} ${info.uid}:${info.gid} ${info.size} ${info.mtimeMs}`;
    if (info.isSymbolicLink()) out[p] = `link ${readlinkSync(p)}`;
    else if (info.isFile()) out[p] = `file ${common} ${createHash("sha256").update(readFileSync(p)).digest("hex")}`;
    else if (info.isDirectory()) {
      out[p] = `dir ${common}`;
      for (const entry of readdirSync(p)) walk(join(p, entry));
    } else out[p] = `other ${common}`;
  };
  walk(path);
  return out;
}

describe("file modes", () => {
  for (const umask of [0o022, 0o000, 0o077]) {
    test(`umask ${umask.toString(8).padStart(3, "0")}: socket 0660 root:nogroup, state dir 0700 with mounts.* 0600, metadata 0644`, async () => {
      const previous = process.umask(umask);
      let child;
      try {
        child = children.spawn(serveArgv(suite.layout, ["--group", "nogroup"]), { cwd: suite.cwd });
      } finally {
        process.umask(previous);
      }
      await waitServing(children, child, suite.layout.socket);
      await withConn(suite.layout.socket, async (conn) => {
        await ok(conn, "VolumeDriver.Create", { Name: "plain", Opts: null });
        await ok(conn, "VolumeDriver.Create", { Name: "shaped", Opts: { user: "nobody", group: "nogroup", mode: "2770" } });
        await ok(conn, "VolumeDriver.Mount", { Name: "plain", ID: "a".repeat(64) });
        await ok(conn, "VolumeDriver.Create", { Name: "gone" });
        await ok(conn, "VolumeDriver.Remove", { Name: "gone" }); // a rewrite and a delete of metadata
      });
      // New records are written by the intent log's checkpoint.
      await checkpointed(suite.layout.root);

      const sock = lstatSync(suite.layout.socket);
      expect(sock.isSocket()).toBe(true);
      expect({ uid: sock.uid, gid: sock.gid, mode: mode(suite.layout.socket) }).toEqual({ uid: 0, gid: groupId("nogroup"), mode: "0660" });

      expect(mode(suite.layout.state)).toBe("0700");
      const stateFiles = readdirSync(suite.layout.state).sort();
      expect(stateFiles).toEqual(["mounts.db", "mounts.slots", "owner.lock"]);
      for (const name of stateFiles) {
        const info = lstatSync(join(suite.layout.state, name));
        expect({ name, mode: mode(join(suite.layout.state, name)), uid: info.uid, file: info.isFile() }).toEqual({ name, mode: "0600", uid: 0, file: true });
      }

      const metaDir = join(suite.layout.root, CONTROL_DIR, "volumes");
      expect(readdirSync(metaDir).sort()).toEqual(["plain", "shaped"]);
      for (const name of ["plain", "shaped"]) {
        const info = lstatSync(join(metaDir, name));
        expect({ name, mode: mode(join(metaDir, name)), file: info.isFile(), uid: info.uid }).toEqual({ name, mode: "0644", file: true, uid: 0 });
      }
      const shaped = statSync(join(suite.layout.root, "shaped"));
      expect({ uid: shaped.uid, gid: shaped.gid, mode: mode(join(suite.layout.root, "shaped")) }).toEqual({ uid: 65534, gid: 65534, mode: "2770" });
      console.log(
        `[security] umask ${umask.toString(8).padStart(3, "0")}: root ${mode(suite.layout.root)}, ${CONTROL_DIR} ${mode(join(suite.layout.root, CONTROL_DIR))}, ` +
          `volumes/ ${mode(metaDir)}, trash/ ${mode(join(suite.layout.root, CONTROL_DIR, "trash"))}, volume without mode option ${mode(join(suite.layout.root, "plain"))}`,
      );
      // mkdir's 0755 minus the umask would lock non-root containers out of the volume.
      expect(mode(join(suite.layout.root, "plain"))).toBe("0755");
      // Trash holds data of removed volumes until it is deleted: not for other users.
      expect(mode(join(suite.layout.root, CONTROL_DIR, "trash"))).toBe("0700");
    }, 30_000);
  }
});

/** The service unit `install` writes for posix (its dry run prints it). */
async function installedUnit(): Promise<string> {
  const proc = Bun.spawn([BINARY, "install", "--backend", "posix", "--dry-run"], { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: {} });
  const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  if (code !== 0) throw new Error(`install --dry-run exited ${code}`);
  return out;
}

function unitValue(unit: string, key: string): string {
  const line = unit.split("\n").find((l) => l.startsWith(`${key}=`));
  if (line === undefined) throw new Error(`no ${key}= in the unit`);
  return line.slice(key.length + 1);
}

describe("under the installed unit's sandbox", () => {
  test("its capability bounding set and UMask keep a setgid mode=2770 root and a 0755 default root", async () => {
    const unit = await installedUnit();
    // RestrictSUIDSGID would refuse the chmod to 2770 outright.
    expect(unit).not.toMatch(/^RestrictSUIDSGID=/m);
    expect(unit).toMatch(/^#.*\bRestrictSUIDSGID\b.*setgid/m);
    const caps = unitValue(unit, "CapabilityBoundingSet").split(/\s+/).map((cap) => `+${cap.replace(/^CAP_/, "").toLowerCase()}`);
    const umask = Number.parseInt(unitValue(unit, "UMask"), 8);
    const previous = process.umask(umask);
    let child;
    try {
      // setpriv applies the unit's bounding set: root's capabilities after exec are exactly it.
      child = children.spawn(["setpriv", "--no-new-privs", `--bounding-set=-all,${caps.join(",")}`, "--", ...serveArgv(suite.layout)], { cwd: suite.cwd });
    } finally {
      process.umask(previous);
    }
    await waitServing(children, child, suite.layout.socket);
    await withConn(suite.layout.socket, async (conn) => {
      await ok(conn, "VolumeDriver.Create", { Name: "plain", Opts: null });
      await ok(conn, "VolumeDriver.Create", { Name: "shared", Opts: { group: "nogroup", mode: "2770" } });
    });
    expect(mode(join(suite.layout.root, "plain"))).toBe("0755");
    const shared = statSync(join(suite.layout.root, "shared"));
    expect({ gid: shared.gid, mode: mode(join(suite.layout.root, "shared")) }).toEqual({ gid: groupId("nogroup"), mode: "2770" });
  }, 30_000);

  for (const umask of [0o022, 0o077]) {
    test(`umask ${umask.toString(8).padStart(3, "0")}: the default layout (volume root inside the state dir) keeps the state dir 0700`, async () => {
      const layout = { ...suite.layout, root: `${suite.layout.state}/volumes` };
      const previous = process.umask(umask);
      let child;
      try {
        child = children.spawn(serveArgv(layout), { cwd: suite.cwd });
      } finally {
        process.umask(previous);
      }
      await waitServing(children, child, layout.socket);
      await withConn(layout.socket, (conn) => ok(conn, "VolumeDriver.Create", { Name: "plain", Opts: null }));
      console.log(`[security] default layout, umask ${umask.toString(8).padStart(3, "0")}: state ${mode(layout.state)}, volume root ${mode(layout.root)}, volume ${mode(join(layout.root, "plain"))}`);
      expect(mode(layout.state)).toBe("0700");
      expect(mode(join(layout.root, "plain"))).toBe("0755");
    }, 30_000);
  }
});

describe("no shell, ever", () => {
  test("a workload with shell metacharacters in names and options under strace: no execve of a shell", async () => {
    const strace = await ensureStrace();
    const rng = new Rng(SEED);
    const trace = `${suite.dir}/execve.trace`;
    // Relative, so that names stay free of "/" and reach the backend: a shell would create
    // it in the plugin's working directory.
    const marker = "pwned";
    const child = children.spawn([strace, "-f", "--seccomp-bpf", "-qq", "-s", "256", "-o", trace, "-e", "trace=execve,execveat", ...serveArgv(suite.layout)], { cwd: suite.cwd });
    await waitServing(children, child, suite.layout.socket);
    const plugins = childPids(child.pid);
    for (const pid of plugins) children.adopt(pid, "docker-quobyte-plugin");
    expect(plugins.length).toBe(1);

    const hostile = [
      `$(touch ${marker})`,
      `\`touch ${marker}\``,
      `x; touch ${marker}`,
      `x && touch ${marker}`,
      `x | touch ${marker}`,
      `x\ntouch ${marker}`,
      `'"; touch ${marker}; echo "`,
      `-rf`,
      `--help`,
    ];
    const answers: string[] = [];
    await withConn(suite.layout.socket, async (conn) => {
      for (let round = 0; round < 3; round++) {
        for (const word of hostile) {
          const name = `v${round}${word}`.slice(0, 200);
          const id = rng.hex(64);
          const calls: [string, unknown][] = [
            ["VolumeDriver.Create", { Name: name, Opts: rng.pick([null, { user: "nobody", group: "nogroup", mode: "0750" }, { user: word }, { group: word }, { mode: word }]) }],
            ["VolumeDriver.Get", { Name: name }],
            ["VolumeDriver.Mount", { Name: name, ID: id }],
            ["VolumeDriver.Path", { Name: name }],
            ["VolumeDriver.Unmount", { Name: name, ID: id }],
            ["VolumeDriver.List", {}],
            ["VolumeDriver.Capabilities", {}],
            ["VolumeDriver.Remove", { Name: name }],
          ];
          for (const [method, body] of calls) {
            const out = await must(conn, method, body);
            answers.push(`${method}:${errCode(out.json) ?? "ok"}`);
          }
        }
      }
    });
    // SIGTERM to the plugin itself (strace's child), by PID; strace then exits with it.
    process.kill(plugins[0]!, "SIGTERM");
    await child.exited;

    // mount-all too: it is the other command that touches storage.
    const mountAllTrace = `${suite.dir}/mount-all.trace`;
    const mountAll = children.spawn([strace, "-f", "--seccomp-bpf", "-qq", "-s", "256", "-o", mountAllTrace, "-e", "trace=execve,execveat", BINARY, "mount-all", "--path", suite.layout.root], { cwd: suite.cwd });
    expect(await mountAll.exited).toBe(0);

    const execs = [...readFileSync(trace, "utf8").split("\n"), ...readFileSync(mountAllTrace, "utf8").split("\n")].filter((l) => /\bexecve(at)?\(/.test(l));
    const programs = execs.map((l) => /execve(?:at)?\((?:[^,]*, )?"([^"]*)"/.exec(l)?.[1] ?? l);
    console.log(`[security] execve calls under strace (serve workload of ${answers.length} requests, then mount-all):\n  ${execs.join("\n  ")}`);
    const shells = programs.filter((p) => /(^|\/)(sh|bash|dash|ash|zsh|ksh|busybox|env)$/.test(p));
    expect(shells).toEqual([]);
    // The only programs run are the binary itself (strace's exec of it).
    expect([...new Set(programs)]).toEqual([BINARY]);
    expect(execs.every((l) => !/"-c"/.test(l))).toBe(true);
    expect(readdirSync(suite.cwd)).toEqual([]);
    for (const place of [suite.dir, suite.layout.root, "/", "/tmp", process.cwd()]) expect(readdirSync(place).filter((e) => e === marker)).toEqual([]);
    expect(readdirSync(suite.layout.root)).toEqual([CONTROL_DIR]);
    // Hostile names did reach the backend: created, mounted, removed.
    expect(answers.filter((a) => a === "VolumeDriver.Mount:ok").length).toBeGreaterThan(5);
    expect(answers.filter((a) => a === "VolumeDriver.Remove:ok").length).toBe(27 - 3);
  }, 60_000);
});

describe("symlinks planted in the root are never followed out of it", () => {
  let outside = "";
  let outsideFile = "";
  let before: Record<string, string> = {};

  function plantOutside(): void {
    outside = `${suite.dir}/outside`;
    mkdirSync(outside, { mode: 0o751 });
    chmodSync(outside, 0o751);
    writeFileSync(`${outside}/secret`, "do not touch\n", { mode: 0o600 });
    mkdirSync(`${outside}/sub`);
    writeFileSync(`${outside}/sub/deep`, "deep\n");
    outsideFile = `${suite.dir}/outside-file`;
    // Valid metadata, so that following the link would "work".
    writeFileSync(outsideFile, `${JSON.stringify({ version: 1, createdAt: new Date(0).toISOString(), options: {}, state: "ready" })}\n`, { mode: 0o600 });
    before = { ...snapshot(outside), ...snapshot(outsideFile) };
  }

  function outsideNow(): Record<string, string> {
    return { ...snapshot(outside), ...snapshot(outsideFile) };
  }

  beforeEach(() => plantOutside());

  test("a volume directory replaced by a symlink: Create, Mount, Path, Remove never reach the target", async () => {
    await suite.startServing();
    await withConn(suite.layout.socket, async (conn) => {
      await ok(conn, "VolumeDriver.Create", { Name: "victim" });
      rmdirSync(join(suite.layout.root, "victim"));
      symlinkSync(outside, join(suite.layout.root, "victim"));

      await must(conn, "VolumeDriver.Create", { Name: "victim", Opts: { user: "nobody", group: "nogroup", mode: "0777" } });
      const mount = await must(conn, "VolumeDriver.Mount", { Name: "victim", ID: "b".repeat(64) });
      expect(errCode(mount.json)).toBeDefined();
      expect(errCode((await must(conn, "VolumeDriver.Path", { Name: "victim" })).json)).toBeDefined();
      expect(await must(conn, "VolumeDriver.Get", { Name: "victim" })).toMatchObject({ status: 200 });
      expect(outsideNow()).toEqual(before);
      await must(conn, "VolumeDriver.Remove", { Name: "victim" });
      expect(outsideNow()).toEqual(before);
    });
  }, 20_000);

  test("a symlink planted under a new volume's name: Create with owner and mode is refused, the target keeps its owner and mode", async () => {
    await suite.startServing();
    symlinkSync(outside, join(suite.layout.root, "planted"));
    await withConn(suite.layout.socket, async (conn) => {
      const created = await must(conn, "VolumeDriver.Create", { Name: "planted", Opts: { user: "nobody", group: "nogroup", mode: "0777" } });
      expect(errCode(created.json)).toBeDefined();
      expect(errCode((await must(conn, "VolumeDriver.Mount", { Name: "planted", ID: "c".repeat(64) })).json)).toBeDefined();
      await must(conn, "VolumeDriver.Remove", { Name: "planted" });
      expect((await must(conn, "VolumeDriver.List", {})).json.Volumes).toEqual([]);
      expect(outsideNow()).toEqual(before);
      expect(lstatSync(join(suite.layout.root, "planted")).isSymbolicLink()).toBe(true);
    });
  }, 20_000);

  test("a metadata file replaced by a symlink to an outside file: every operation refuses, the file is untouched", async () => {
    // A shared root (--scope global) reads metadata through to disk, where the link is met.
    await suite.startServing(["--scope", "global"]);
    const metaDir = join(suite.layout.root, CONTROL_DIR, "volumes");
    await withConn(suite.layout.socket, async (conn) => {
      await ok(conn, "VolumeDriver.Create", { Name: "metavictim" });
      await checkpointed(suite.layout.root);
      unlinkSync(join(metaDir, "metavictim"));
      symlinkSync(outsideFile, join(metaDir, "metavictim"));
      symlinkSync(outsideFile, join(metaDir, "ghost")); // and one with no volume at all

      for (const name of ["metavictim", "ghost"]) {
        for (const [method, body] of [
          ["VolumeDriver.Create", { Name: name, Opts: { mode: "0777", user: "nobody" } }],
          ["VolumeDriver.Get", { Name: name }],
          ["VolumeDriver.Mount", { Name: name, ID: "d".repeat(64) }],
          ["VolumeDriver.Remove", { Name: name }],
        ] as const) {
          const out = await must(conn, method, body);
          expect({ name, method, refused: errCode(out.json) !== undefined }).toEqual({ name, method, refused: true });
        }
      }
      await must(conn, "VolumeDriver.List", {});
      expect(outsideNow()).toEqual(before);
      expect(readFileSync(outsideFile, "utf8")).toContain('"state":"ready"');
    });
  }, 20_000);

  test("a local root answers from its own index: a metadata file swapped for a symlink is never read, the target stays untouched", async () => {
    await suite.startServing();
    const metaDir = join(suite.layout.root, CONTROL_DIR, "volumes");
    await withConn(suite.layout.socket, async (conn) => {
      await ok(conn, "VolumeDriver.Create", { Name: "metavictim" });
      await checkpointed(suite.layout.root);
      unlinkSync(join(metaDir, "metavictim"));
      symlinkSync(outsideFile, join(metaDir, "metavictim"));
      await sendAll(conn, [
        ["VolumeDriver.Create", { Name: "metavictim", Opts: { mode: "0777", user: "nobody" } }],
        ["VolumeDriver.Get", { Name: "metavictim" }],
        ["VolumeDriver.Mount", { Name: "metavictim", ID: "d".repeat(64) }],
        ["VolumeDriver.Unmount", { Name: "metavictim", ID: "d".repeat(64) }],
        ["VolumeDriver.Remove", { Name: "metavictim" }],
      ] as const);
      expect(outsideNow()).toEqual(before);
      expect(readFileSync(outsideFile, "utf8")).toContain('"state":"ready"');
    });
  }, 20_000);

  test("a symlink planted where a new volume's record is to be written: the checkpoint replaces the link, never writes through it", async () => {
    await suite.startServing();
    const metaDir = join(suite.layout.root, CONTROL_DIR, "volumes");
    await withConn(suite.layout.socket, async (conn) => {
      await ok(conn, "VolumeDriver.Create", { Name: "planted" });
      // The record waits for the checkpoint, about a second: the link comes first.
      expect(existsSync(join(metaDir, "planted"))).toBe(false);
      symlinkSync(outsideFile, join(metaDir, "planted"));
      await checkpointed(suite.layout.root);
      expect(outsideNow()).toEqual(before);
      const record = lstatSync(join(metaDir, "planted"));
      expect(record.isFile()).toBe(true);
      expect(JSON.parse(readFileSync(join(metaDir, "planted"), "utf8")).state).toBe("ready");
      await ok(conn, "VolumeDriver.Remove", { Name: "planted" });
      expect(outsideNow()).toEqual(before);
    });
  }, 20_000);

  test("symlinks inside a volume: Remove deletes the links, not their targets", async () => {
    await suite.startServing();
    await withConn(suite.layout.socket, async (conn) => {
      await ok(conn, "VolumeDriver.Create", { Name: "links" });
      await ok(conn, "VolumeDriver.Mount", { Name: "links", ID: "e".repeat(64) });
      const vol = join(suite.layout.root, "links");
      symlinkSync(outside, join(vol, "to-dir"));
      symlinkSync(`${outside}/secret`, join(vol, "to-file"));
      mkdirSync(join(vol, "nested/deeper"), { recursive: true });
      symlinkSync(outside, join(vol, "nested/deeper/to-dir"));
      symlinkSync("../../../../outside", join(vol, "nested/deeper/relative"));
      await ok(conn, "VolumeDriver.Unmount", { Name: "links", ID: "e".repeat(64) });
      await ok(conn, "VolumeDriver.Remove", { Name: "links" });
      expect(outsideNow()).toEqual(before);
    });
  }, 20_000);

  test("the control directory's volumes/ swapped for a symlink while serving: no metadata is written outside", async () => {
    await suite.startServing();
    const metaDir = join(suite.layout.root, CONTROL_DIR, "volumes");
    await withConn(suite.layout.socket, async (conn) => {
      await ok(conn, "VolumeDriver.Create", { Name: "before-swap" });
      renameSync(metaDir, `${metaDir}.real`);
      symlinkSync(outside, metaDir);
      await sendAll(conn, [
        ["VolumeDriver.Create", { Name: "after-swap" }],
        ["VolumeDriver.Remove", { Name: "before-swap" }],
        ["VolumeDriver.Create", { Name: "secret" }],
        ["VolumeDriver.Remove", { Name: "secret" }],
      ] as const);
      expect(outsideNow()).toEqual(before);
    });
  }, 20_000);

  for (const part of ["trash", "volumes", ""] as const) {
    const what = part === "" ? CONTROL_DIR : `${CONTROL_DIR}/${part}`;
    test(`a start with ${what} replaced by a symlink to an outside directory refuses to serve and deletes nothing there`, async () => {
      await suite.startServing().then(({ child }) => children.stop(child, "SIGTERM"));
      const target = join(suite.layout.root, CONTROL_DIR, part);
      renameSync(target, `${suite.dir}/moved-away`);
      symlinkSync(outside, target);
      const child = children.spawn(serveArgv(suite.layout), { cwd: suite.cwd });
      const code = await Promise.race([child.exited, Bun.sleep(10_000).then(() => "still running")]);
      expect(code).toBe(1);
      expect(children.log(child)).toContain("symlink");
      expect(outsideNow()).toEqual(before);
    }, 20_000);
  }
});
