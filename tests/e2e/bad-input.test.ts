// Bad input, one table: each row runs the compiled binary and expects the one line it
// prints, naming the flag or file, the value and the fix, and its exit code; and that the
// working directory is exactly as before (no unit, no volume, no socket left behind).

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { makeTempDir, removeTempDir } from "../support/tmp.ts";
import { type PluginProcess, runBinary, startPlugin, stopPlugin } from "./plugin-process.ts";

let dir = "";

beforeAll(async () => {
  dir = await makeTempDir("dqp-bad-");
  const files: Record<string, string> = {
    "no-equals.env": "# settings\nQUOBYTE_API_URL http://x\nQUOBYTE_API_ULR=http://y\n",
    "typo.env": "QUOBYTE_API_URL=http://api:7860\nQUOBYTE_TENNANT_ID=t\n",
    "no-url.env": "SOCKET_GROUP=root\n",
    "pw-no-equals.env": "QUOBYTE_API_URL=http://api:7860\nQUOBYTE_API_PASSWORD hunter2\n",
    "comment-continues.env": "# was QUOBYTE_API_URL=http://old \\\nQUOBYTE_API_URL=http://api:7860\n",
    "pw-bad-name.env": "QUOBYTE_API_URL=http://api:7860\nQUOBYTE_API_PASSWORD hunter2 =x\n",
    "open-quote.env": 'QUOBYTE_API_URL=http://api:7860\nQUOBYTE_API_PASSWORD="unterminated\n',
    "a-file": "not a directory\n",
    "cert.der": "0\x82\x03\x01binary",
    "key.txt": "just text\n",
    pw: "secret\n",
  };
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  mkdirSync(join(dir, "plain-dir"));
});
afterAll(async () => {
  await removeTempDir(dir);
});

function tree(root: string): string[] {
  return readdirSync(root, { recursive: true, withFileTypes: true }).map((entry) => join(entry.parentPath, entry.name)).sort();
}

/**
 * What the plugin would create in its default places (a row without --state-dir, --socket
 * or --path uses them): the state dir and posix root, the default socket and spec files,
 * the quobyte mount point, the installed binary and units.
 */
const DEFAULT_PLACES = [
  "/var/lib/docker-quobyte-plugin",
  "/run/docker/plugins/quobyte.sock",
  "/run/docker/plugins/quobyte.spec",
  "/run/docker/plugins/quobyte.json",
  "/etc/docker/plugins/quobyte.spec",
  "/etc/docker/plugins/quobyte.json",
  "/run/docker/quobyte",
  "/usr/local/bin/docker-quobyte-plugin",
  "/etc/systemd/system/docker-quobyte-plugin.service",
  "/etc/systemd/system/docker-quobyte-plugin.socket",
];

function defaultPlaces(): Record<string, string[] | "absent"> {
  return Object.fromEntries(DEFAULT_PLACES.map((place) => [place, !existsSync(place) ? "absent" : statSync(place).isDirectory() ? tree(place) : [place]]));
}

/** [argv with {dir} for the temp dir, exit code, the whole of stderr]. */
const CASES: [string, number, string][] = [
  ["serve --path {dir}/v extra words", 2, 'unexpected argument "extra": this command takes only --flags (a value with spaces needs quotes) (see docker-quobyte-plugin serve --help)'],
  ["serve --env-file {dir}/no-equals.env", 2, '{dir}/no-equals.env line 2: "QUOBYTE_API_URL ..." is not KEY=VALUE (is the "=" missing?) (see docker-quobyte-plugin serve --help)'],
  ["serve --env-file {dir}/comment-continues.env", 2, '{dir}/comment-continues.env line 1: the comment ends in "\\", which systemd 252 continues onto line 2 and so drops that line; remove the "\\" (see docker-quobyte-plugin serve --help)'],
  // A secret on a bad line or in the API URL is never repeated (every row is checked for hunter2).
  ["serve --env-file {dir}/pw-no-equals.env", 2, '{dir}/pw-no-equals.env line 2: "QUOBYTE_API_PASSWORD ..." is not KEY=VALUE (is the "=" missing?) (see docker-quobyte-plugin serve --help)'],
  ["serve --env-file {dir}/pw-bad-name.env", 2, '{dir}/pw-bad-name.env line 2: "QUOBYTE_API_PASSWORD ..." is not a variable name (see docker-quobyte-plugin serve --help)'],
  ["serve --api admin:hunter2@api:7860 --tenant-id t --password-file {dir}/pw", 2, 'API URL "api:7860" must start with http:// or https:// (see docker-quobyte-plugin serve --help)'],
  ["serve --api ftp://admin:hunter2@api:7860 --tenant-id t --password-file {dir}/pw", 2, 'API URL "ftp://api:7860/" must start with http:// or https:// (see docker-quobyte-plugin serve --help)'],
  ["serve --env-file {dir}/typo.env", 2, "env file {dir}/typo.env: unknown variable QUOBYTE_TENNANT_ID (did you mean QUOBYTE_TENANT_ID?); known: QUOBYTE_API_URL, QUOBYTE_API_USER, QUOBYTE_API_PASSWORD, QUOBYTE_MOUNT_PATH, QUOBYTE_MOUNT_OPTIONS, QUOBYTE_REGISTRY, QUOBYTE_TENANT_ID, QUOBYTE_VOLUME_CONFIG_NAME, QUOBYTE_CACHE_TTL (see docker-quobyte-plugin serve --help)"],
  ["serve --env-file {dir}/no-url.env --path {dir}/v", 2, "env file {dir}/no-url.env sets no QUOBYTE_API_URL, so the backend is unclear: add QUOBYTE_API_URL=http://HOST:7860 to it for quobyte, or pass --backend posix (see docker-quobyte-plugin serve --help)"],
  ["serve --env-file {dir}/open-quote.env", 2, "{dir}/open-quote.env line 2: the quote opened for QUOBYTE_API_PASSWORD is never closed (see docker-quobyte-plugin serve --help)"],
  ["serve --env-file {dir}/missing.env", 2, "--env-file {dir}/missing.env: the env file does not exist (see docker-quobyte-plugin serve --help)"],
  ["serve --env-file {dir}/plain-dir", 2, "--env-file {dir}/plain-dir: the env file is a directory; name a file (see docker-quobyte-plugin serve --help)"],
  ["serve --backend posix --path {dir}/a-file --state-dir {dir}/s", 2, "--path {dir}/a-file is a file, not a directory; name a directory (it is created when missing) (see docker-quobyte-plugin serve --help)"],
  ["serve --backend posix --path {dir}/v --state-dir {dir}/a-file", 2, "--state-dir {dir}/a-file is a file, not a directory; name a directory (it is created when missing) (see docker-quobyte-plugin serve --help)"],
  ["serve --backend posix --path {dir}/v --state-dir {dir}/s --socket {dir}/p.sock --group no-such-group-dqp", 2, "--group no-such-group-dqp (or SOCKET_GROUP) does not exist on this host; create it (groupadd no-such-group-dqp) or name another (see docker-quobyte-plugin serve --help)"],
  ["serve --backend posix --path {dir}/v --listen tcp://0.0.0.0:18443 --tls-cert {dir}/cert.der --tls-key {dir}/key.txt", 2, "--listen tcp://0.0.0.0:18443 is reachable from the network and the plugin protocol has no login: it needs --tls-cert, --tls-key and --tls-ca (missing --tls-ca); give the engine its client certificate with `docker-quobyte-plugin write-spec --address https://0.0.0.0:18443 --tls-ca CA.pem --tls-cert CLIENT.pem --tls-key CLIENT-KEY.pem`, or listen on 127.0.0.1 (see docker-quobyte-plugin serve --help)"],
  ["serve --backend posix --path {dir}/v --listen tcp://127.0.0.1:0 --tls-cert {dir}/cert.der --tls-key {dir}/key.txt", 2, '--tls-cert {dir}/cert.der is not a PEM certificate (no "-----BEGIN CERTIFICATE-----" line); convert it with openssl, e.g. `openssl x509 -inform der -in FILE -out FILE.pem` (see docker-quobyte-plugin serve --help)'],
  ["serve --api http://api:7860 --tenant-id t --password-file {dir}/pw --path {dir}/v --api-ca {dir}/key.txt", 2, '--api-ca {dir}/key.txt is not a PEM certificate (no "-----BEGIN CERTIFICATE-----" line); convert it with openssl, e.g. `openssl x509 -inform der -in FILE -out FILE.pem` (see docker-quobyte-plugin serve --help)'],
  ["serve --backend posix --path {dir}/v --timeout 0", 2, '--timeout "0" must be a number of seconds above 0 and at most 110 (see docker-quobyte-plugin serve --help)'],
  ["serve --sate-dir {dir}/s", 2, "unknown option --sate-dir (see docker-quobyte-plugin serve --help)"],
  ["serve --password hunter2", 2, "there is no --password flag: argv is visible to every user; use --password-file or QUOBYTE_API_PASSWORD (see docker-quobyte-plugin serve --help)"],
  ["mount-all --backend posix --path {dir}/plain-dir --mount-check mountpoint", 1, "--mount-check mountpoint: nothing is mounted at {dir}/plain-dir; mount the shared filesystem there first (fstab or a .mount unit), or pass --mount-check none if it is meant to be a local directory"],
  ["write-spec --dir {dir}/a-file", 2, "--dir {dir}/a-file is a file, not a directory; name a directory (it is created when missing) (see docker-quobyte-plugin write-spec --help)"],
  ["write-spec --dir {dir}/specs --address https://h:9443 --tls-ca {dir}/key.txt", 2, '--tls-ca {dir}/key.txt is not a PEM certificate (no "-----BEGIN CERTIFICATE-----" line); convert it with openssl, e.g. `openssl x509 -inform der -in FILE -out FILE.pem` (see docker-quobyte-plugin write-spec --help)'],
  ["status --socket {dir}/none.sock", 2, "the plugin is not running at {dir}/none.sock (no such socket); start it with `systemctl start docker-quobyte-plugin.socket docker-quobyte-plugin.service` or `docker-quobyte-plugin serve`, or name its socket with --socket or --name"],
  ["status --socket {dir}/x.sock extra", 2, 'unexpected argument "extra": this command takes only --flags (a value with spaces needs quotes) (see docker-quobyte-plugin status --help)'],
  ["install --prefix {dir}/root --env-file rel.env", 2, `--env-file rel.env must be an absolute path (the unit runs from /), such as ${process.cwd()}/rel.env (see docker-quobyte-plugin install --help)`],
  ["install --prefix {dir}/root --env-file {dir}/no-equals.env", 2, '{dir}/no-equals.env line 2: "QUOBYTE_API_URL ..." is not KEY=VALUE (is the "=" missing?) (see docker-quobyte-plugin install --help)'],
];

describe("bad input gets one line that says what to do, and changes nothing on disk", () => {
  for (const [argv, code, message] of CASES) {
    test(argv, async () => {
      const before = tree(dir);
      const placesBefore = defaultPlaces();
      const result = await runBinary(argv.replaceAll("{dir}", dir).split(" "));
      expect(result.stderr).toBe(`error: ${message.replaceAll("{dir}", dir)}\n`);
      expect(result.stderr).not.toContain("hunter2");
      expect(result.code).toBe(code);
      expect(result.stdout).toBe("");
      expect(tree(dir)).toEqual(before);
      expect(defaultPlaces()).toEqual(placesBefore);
    });
  }
});

describe("secrets stay out of the log", () => {
  test("serve with user:password@ in the API URL logs the URL without them", async () => {
    const run = await makeTempDir("dqp-secret-");
    let plugin: PluginProcess | undefined;
    try {
      writeFileSync(join(run, "pw"), "another-secret\n");
      const args = ["--api", "http://admin:hunter2@127.0.0.1:1", "--tenant-id", "t", "--password-file", join(run, "pw"), "--path", join(run, "mnt")];
      plugin = await startPlugin([...args, "--mount-check", "none", "--state-dir", join(run, "s"), "--socket", join(run, "p.sock")], join(run, "p.sock"));
      expect(await stopPlugin(plugin)).toBe(0);
      const log = plugin.stderr();
      expect(log).toContain('api="http://127.0.0.1:1/"');
      expect(log).not.toContain("hunter2");
      expect(log).not.toContain("another-secret");
    } finally {
      if (plugin && plugin.proc.exitCode === null) await stopPlugin(plugin, "SIGKILL");
      await removeTempDir(run);
    }
  });
});
