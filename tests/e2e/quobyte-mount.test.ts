// The single host mount on a real FUSE filesystem that looks like a Quobyte client
// (bindfs mounted as fuse.quobyte by tests/fixtures/mount.quobyte-standin): liveness,
// a dead client (ENOTCONN), a frozen one, and mount-all around them.

import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { MountMonitor } from "../../src/system/mount-health.ts";
import { mountAt } from "../../src/system/mountinfo.ts";
import { makeTempDir, removeTempDir } from "../support/tmp.ts";
import { BINARY } from "./plugin-process.ts";
import { pidsWithCmdline, runArgv } from "./support/engine.ts";

const STANDIN = join(import.meta.dir, "../fixtures/mount.quobyte-standin");

let dir: string;
let source: string;
let mnt: string;

beforeEach(async () => {
  dir = await makeTempDir("dqp-fuse-");
  source = join(dir, "cluster");
  mnt = join(dir, "mnt");
  await mkdir(source);
  await mkdir(mnt);
});

afterEach(async () => {
  for (const pid of pidsWithCmdline(source)) {
    process.kill(pid, "SIGCONT");
    process.kill(pid, "SIGKILL");
  }
  while (await mountAt(mnt)) await runArgv(["umount", "-l", mnt]);
  await removeTempDir(dir);
});

function bindfsPid(): number {
  const [pid] = pidsWithCmdline(source);
  if (pid === undefined) throw new Error("no bindfs process");
  return pid;
}

async function mountAll(extra: string[] = []) {
  return runArgv(
    [BINARY, "mount-all", "--backend", "quobyte", "--path", mnt, "--registry", "registry.example:7861", "--mount-command", STANDIN, "--mount-timeout", "10", ...extra],
    { env: { DQP_STANDIN_SOURCE: source, DQP_STANDIN_ARGS: join(dir, "args") }, timeoutMs: 30_000 },
  );
}

describe("mount-all and the mount check on a FUSE stand-in", () => {
  test("mounts once with argv, then finds the live mount and does nothing", async () => {
    const first = await mountAll(["--options=-o user_xattr"]);
    expect(first.code).toBe(0);
    expect(first.stdout).toContain("now a live Quobyte mount");
    expect(readFileSync(join(dir, "args"), "utf8").trim().split("\n")).toEqual(["-o", "user_xattr", "registry.example:7861/", mnt]);
    expect((await mountAt(mnt))?.fsType).toBe("fuse.quobyte");
    expect((await new MountMonitor(mnt, "quobyte", 2000).check()).state).toBe("live");

    const again = await mountAll();
    expect(again.code).toBe(0);
    expect(again.stdout).toContain("already a live Quobyte mount");
    expect(pidsWithCmdline(source)).toHaveLength(1);
  });

  test("a dead client (ENOTCONN) is detected, lazily unmounted and mounted again", async () => {
    expect((await mountAll()).code).toBe(0);
    process.kill(bindfsPid(), "SIGKILL");
    const health = await new MountMonitor(mnt, "quobyte", 2000).check();
    expect(health.state).toBe("dead");
    // ENOTCONN once the daemon is gone; ECONNABORTED for a request it had in flight when killed.
    expect(health.detail).toMatch(/ENOTCONN|ECONNABORTED/);

    const remount = await mountAll();
    expect(remount.code).toBe(0);
    expect(remount.stderr).toContain("unmounting it lazily");
    expect((await new MountMonitor(mnt, "quobyte", 2000).check()).state).toBe("live");
  });

  test("a frozen client makes the check answer 'hung' within its deadline, and at once while it stays frozen", async () => {
    expect((await mountAll()).code).toBe(0);
    const monitor = new MountMonitor(mnt, "quobyte", 500);
    expect((await monitor.check()).state).toBe("live");
    const pid = bindfsPid();
    process.kill(pid, "SIGSTOP");
    try {
      let started = Date.now();
      expect((await monitor.check()).state).toBe("hung");
      expect(Date.now() - started).toBeLessThan(2000);
      started = Date.now();
      expect((await monitor.check()).state).toBe("hung");
      expect(Date.now() - started).toBeLessThan(100);
    } finally {
      process.kill(pid, "SIGCONT");
    }
    const deadline = Date.now() + 5000;
    while ((await monitor.check()).state !== "live" && Date.now() < deadline) await Bun.sleep(50);
    expect((await monitor.check()).state).toBe("live");
  });

  test("refuses a non-empty, unmounted mount point and leaves it alone", async () => {
    writeFileSync(join(mnt, "written-while-down"), "data");
    const result = await mountAll();
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("refusing to mount over");
    expect(readFileSync(join(mnt, "written-while-down"), "utf8")).toBe("data");
    expect(await mountAt(mnt)).toBeUndefined();
  });

  test("a failing mount program gives a clear error and a non-zero exit", async () => {
    const result = await runArgv([BINARY, "mount-all", "--backend", "quobyte", "--path", mnt, "--mount-command", "/bin/false", "--mount-timeout", "5"], {
      timeoutMs: 30_000,
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("/bin/false exited with 1");
  });

  test("a plain directory or another filesystem is not a Quobyte mount", async () => {
    expect((await new MountMonitor(mnt, "quobyte", 2000).check()).state).toBe("not-mounted");
    const bind = await runArgv(["bindfs", source, mnt]);
    expect(bind.code).toBe(0);
    expect((await new MountMonitor(mnt, "quobyte", 2000).check()).state).toBe("wrong-filesystem");
    expect((await new MountMonitor(mnt, "mountpoint", 2000).check()).state).toBe("live");
    expect(existsSync(mnt)).toBe(true);
  });
});
