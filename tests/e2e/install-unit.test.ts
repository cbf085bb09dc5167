// The units `install` writes, checked by systemd itself (Debian 12's systemd 252):
// `systemd-analyze verify` and the offline security exposure, and every serve flag the
// operator gave reaching ExecStart and the socket unit.

import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { makeTempDir, removeTempDir } from "../support/tmp.ts";
import { runBinary } from "./plugin-process.ts";

let dir: string;
beforeEach(async () => {
  dir = await makeTempDir("dqp-install-");
});
afterEach(async () => {
  await removeTempDir(dir);
});

const UNITS = "etc/systemd/system";

async function systemdAnalyze(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const proc = Bun.spawn(["systemd-analyze", ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, SYSTEMD_LOG_COLOR: "0", SYSTEMD_COLORS: "0" } });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

/** Splits an Exec line as systemd does for our quoting: blanks, and "..." with \\ escapes. */
function execWords(line: string): string[] {
  const words: string[] = [];
  for (const match of line.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)) words.push(match[1] !== undefined ? match[1].replace(/\\(.)/g, "$1") : (match[2] ?? ""));
  return words;
}

function unitLine(unit: string, key: string): string {
  const line = unit.split("\n").find((l) => l.startsWith(`${key}=`));
  if (line === undefined) throw new Error(`no ${key}= in\n${unit}`);
  return line.slice(key.length + 1);
}

describe("install", () => {
  test("every serve flag given to install reaches ExecStart; the socket unit gets the name and group", async () => {
    writeFileSync(`${dir}/q.env`, "QUOBYTE_API_URL=http://api:7860\nQUOBYTE_TENANT_ID=t\n");
    const given: [string, string][] = [
      ["--env-file", `${dir}/q.env`],
      ["--path", "/srv/quobyte mnt"],
      ["--mount-check", "mountpoint"],
      ["--scope", "global"],
      ["--state-dir", "/var/lib/q2"],
      ["--name", "q2"],
      ["--group", "root"],
      ["--host-id", "node-7"],
      ["--lease-timeout", "90"],
    ];
    const result = await runBinary(["install", "--prefix", `${dir}/root`, "--backend", "quobyte", ...given.flat()]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const unit = readFileSync(`${dir}/root/${UNITS}/docker-quobyte-plugin.service`, "utf8");
    const serve = execWords(unitLine(unit, "ExecStart"));
    expect(serve.slice(0, 4)).toEqual(["/usr/local/bin/docker-quobyte-plugin", "serve", "--backend", "quobyte"]);
    for (const [flag, value] of given) {
      const at = serve.indexOf(flag);
      expect(at, `${flag} in ${serve.join(" ")}`).toBeGreaterThan(0);
      expect(serve[at + 1]).toBe(value);
    }
    const mountAll = execWords(unitLine(unit, "ExecStartPre"));
    expect(mountAll.slice(1)).toEqual(["mount-all", "--backend", "quobyte", "--env-file", `${dir}/q.env`, "--path", "/srv/quobyte mnt", "--mount-check", "mountpoint", "--state-dir", "/var/lib/q2"]);
    expect(unit).not.toContain("EnvironmentFile=");
    const socket = readFileSync(`${dir}/root/${UNITS}/docker-quobyte-plugin.socket`, "utf8");
    expect(unitLine(socket, "ListenStream")).toBe("/run/docker/plugins/q2.sock");
    expect(unitLine(socket, "SocketGroup")).toBe("root");
  });

  for (const backend of ["posix", "quobyte"] as const) {
    test(`${backend}: systemd-analyze verify passes and the offline exposure is at most 5.0`, async () => {
      const root = `${dir}/root`;
      const result = await runBinary(["install", "--prefix", root, "--backend", backend]);
      expect(result.code).toBe(0);
      // verify resolves the units' dependencies (sysinit.target, ...) inside --root.
      mkdirSync(`${root}/usr/lib/systemd`, { recursive: true });
      cpSync("/usr/lib/systemd/system", `${root}/usr/lib/systemd/system`, { recursive: true, verbatimSymlinks: true });
      const verify = await systemdAnalyze(["verify", `--root=${root}`, "docker-quobyte-plugin.service", "docker-quobyte-plugin.socket"]);
      expect(verify.code, verify.stderr).toBe(0);
      expect(verify.stderr.split("\n").filter((line) => line.includes("docker-quobyte-plugin"))).toEqual([]);

      const security = await systemdAnalyze(["security", "--offline=true", `--root=${root}`, "--no-pager", "docker-quobyte-plugin.service"]);
      const exposure = Number(/Overall exposure level for docker-quobyte-plugin\.service: (\d+\.\d+)/.exec(security.stdout)?.[1]);
      console.log(`${backend} unit: offline exposure ${exposure}`);
      expect(exposure, security.stdout).toBeLessThanOrEqual(5.0);

      // Each directive left out is named in the unit with its reason.
      const unit = readFileSync(`${root}/${UNITS}/docker-quobyte-plugin.service`, "utf8");
      for (const omitted of ["ProtectSystem", "PrivateTmp", "PrivateDevices", "ProtectKernelTunables", "PrivateUsers", "MemoryDenyWriteExecute", "PrivateNetwork"]) {
        expect(unit).toMatch(new RegExp(`^#.*\\b${omitted}\\b`, "m"));
      }
      expect(unit).toContain("Bun's JavaScript JIT");
      expect(unit).toContain("must\n#  propagate to the host");
    });
  }

  test("the installing shell's variables do not decide the unit (it never gets them), except SOCKET_GROUP as --group", async () => {
    const shell = { PATH: process.env.PATH, QUOBYTE_API_URL: "http://api:7860", QUOBYTE_TENNANT_ID: "stray", SOCKET_GROUP: "nogroup" };
    const result = await runBinary(["install", "--prefix", `${dir}/root`], shell);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const serve = execWords(unitLine(readFileSync(`${dir}/root/${UNITS}/docker-quobyte-plugin.service`, "utf8"), "ExecStart"));
    expect(serve.slice(1)).toEqual(["serve", "--backend", "posix", "--group", "nogroup", "--log-format", "json"]);
    // A stray exported QUOBYTE_* name is no reason to refuse any command.
    const mountAll = await runBinary(["mount-all", "--backend", "posix", "--path", `${dir}/volumes`, "--state-dir", `${dir}/state`], shell);
    expect(mountAll.stderr).toBe("");
    expect(mountAll.code).toBe(0);
  });

  test("bad input writes nothing: relative paths, a broken env file, an unclear backend, an unknown group", async () => {
    writeFileSync(`${dir}/broken.env`, "QUOBYTE_API_URL http://x\n");
    writeFileSync(`${dir}/no-url.env`, "QUOBYTE_TENANT_ID=t\n");
    const cases: [string[], string][] = [
      [["--env-file", "rel.env"], `error: --env-file rel.env must be an absolute path (the unit runs from /), such as ${process.cwd()}/rel.env`],
      [["--path", "data"], "error: --path data must be an absolute path"],
      [["--env-file", `${dir}/broken.env`], `error: ${dir}/broken.env line 1: "QUOBYTE_API_URL ..." is not KEY=VALUE`],
      [["--env-file", `${dir}/no-url.env`], `error: env file ${dir}/no-url.env sets no QUOBYTE_API_URL, so the backend is unclear`],
      [["--backend", "posix", "--mount-check", "sometimes"], 'error: --mount-check "sometimes" is not one of'],
    ];
    for (const [args, message] of cases) {
      const result = await runBinary(["install", "--prefix", `${dir}/root`, ...args]);
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr.startsWith(message), `${result.stderr} should start with ${message}`).toBe(true);
      expect(existsSync(`${dir}/root`)).toBe(false);
    }
    // The group is checked on a live install (a staged image has its own groups).
    const group = await runBinary(["install", "--backend", "posix", "--group", "no-such-group-dqp", "--dry-run"]);
    expect(group.code).toBe(2);
    expect(group.stderr).toStartWith("error: --group no-such-group-dqp (or SOCKET_GROUP) does not exist on this host; create it (groupadd no-such-group-dqp) or name another");
    expect(group.stdout).toBe("");
  });
});
