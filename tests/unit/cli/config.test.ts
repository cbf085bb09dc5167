import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { assertKnownArgs, backendArgs } from "../../../src/cli/args.ts";
import { resolveServeConfig, UsageError } from "../../../src/config.ts";
import { loadEnvironment, parseEnvFile } from "../../../src/env-file.ts";
import { makeTempDir, removeTempDir } from "../../support/tmp.ts";

const quobyteEnv = {
  QUOBYTE_API_URL: "http://api.example:7860",
  QUOBYTE_API_PASSWORD: "pw",
  QUOBYTE_TENANT_ID: "My Tenant",
};

describe("resolveServeConfig", () => {
  test("posix is the default without an API URL, with the documented defaults", () => {
    const config = resolveServeConfig({}, {});
    expect(config).toMatchObject({
      backend: "posix",
      path: "/var/lib/docker-quobyte-plugin/volumes",
      stateDir: "/var/lib/docker-quobyte-plugin",
      socketPath: "/run/docker/plugins/quobyte.sock",
      socketGroup: "root",
      mountCheck: "none",
      timeoutMs: 30_000,
      quobyte: undefined,
      hostId: hostname().replace(/[^A-Za-z0-9.-]/g, "_"),
      leaseTimeoutMs: 60_000,
    });
  });

  test("--host-id and --lease-timeout override the hostname and the 60 s lease", () => {
    expect(resolveServeConfig({ "host-id": "node-7", "lease-timeout": "5" }, {})).toMatchObject({ hostId: "node-7", leaseTimeoutMs: 5000 });
  });

  test("an API URL makes quobyte the default, with the original plugin's env names", () => {
    const config = resolveServeConfig(
      {},
      {
        ...quobyteEnv,
        QUOBYTE_API_USER: "ops",
        QUOBYTE_MOUNT_PATH: "/mnt/q",
        QUOBYTE_MOUNT_OPTIONS: "-o user_xattr  --allow-usermapping-in-volumename",
        QUOBYTE_REGISTRY: "reg:7861",
        QUOBYTE_VOLUME_CONFIG_NAME: "SSD",
        SOCKET_GROUP: "docker",
      },
    );
    expect(config.backend).toBe("quobyte");
    expect(config.path).toBe("/mnt/q");
    expect(config.mountCheck).toBe("quobyte");
    expect(config.socketGroup).toBe("docker");
    expect(config.quobyte).toMatchObject({
      apiUrl: "http://api.example:7860",
      user: "ops",
      password: "pw",
      registry: "reg:7861",
      tenant: "My Tenant",
      configurationName: "SSD",
      mountOptions: ["-o", "user_xattr", "--allow-usermapping-in-volumename"],
      apiTimeoutMs: 10_000,
    });
  });

  test("flags override the environment", () => {
    const config = resolveServeConfig(
      { api: "https://other:7860", user: "u2", "tenant-id": "t2", registry: "r2", "configuration-name": "C2", options: "-o x", path: "/p2" },
      { ...quobyteEnv, QUOBYTE_API_USER: "ops", QUOBYTE_MOUNT_PATH: "/mnt/q" },
    );
    expect(config.path).toBe("/p2");
    expect(config.quobyte).toMatchObject({ apiUrl: "https://other:7860", user: "u2", tenant: "t2", registry: "r2", configurationName: "C2", mountOptions: ["-o", "x"] });
  });

  test("refuses what cannot work, with the flag or variable named", () => {
    const cases: [Parameters<typeof resolveServeConfig>[0], Record<string, string>, RegExp][] = [
      [{}, { ...quobyteEnv, QUOBYTE_API_URL: "api.example:7860" }, /must start with http/],
      [{ backend: "quobyte" }, {}, /API URL/],
      [{}, { ...quobyteEnv, QUOBYTE_API_PASSWORD: "" }, /password/],
      [{}, { ...quobyteEnv, QUOBYTE_TENANT_ID: "" }, /tenant/],
      [{ backend: "nfs" }, {}, /--backend/],
      [{ scope: "planet" }, {}, /--scope/],
      [{ timeout: "0" }, {}, /--timeout/],
      [{ timeout: "500" }, {}, /--timeout/],
      [{ "mount-check": "maybe" }, {}, /--mount-check/],
      [{ name: "../evil" }, {}, /--name/],
      [{ "log-level": "loud" }, {}, /--log-level/],
      [{ "host-id": "a/b" }, {}, /--host-id/],
      [{ "host-id": "" }, {}, /--host-id/],
      [{ "lease-timeout": "0" }, {}, /--lease-timeout/],
      [{ "lease-timeout": "soon" }, {}, /--lease-timeout/],
      [{ listen: "tcp://0.0.0.0:9443", "tls-cert": "/c", "tls-key": "/k" }, {}, /needs --tls-cert, --tls-key and --tls-ca \(missing --tls-ca\).*write-spec --address https:\/\/0\.0\.0\.0:9443/],
      [{ listen: "tcp://10.0.0.1:9443" }, {}, /missing --tls-cert, --tls-key, --tls-ca/],
    ];
    for (const [args, env, message] of cases) {
      expect(() => resolveServeConfig(args, env)).toThrow(message);
      expect(() => resolveServeConfig(args, env)).toThrow(UsageError);
    }
  });
});

describe("flags", () => {
  test("unknown flags and any --password are refused", () => {
    expect(() => assertKnownArgs(["--path", "/x", "--sate-dir", "/y"], backendArgs)).toThrow("unknown option --sate-dir");
    expect(() => assertKnownArgs(["--password=hunter2"], backendArgs)).toThrow(/no --password flag/);
    expect(() => assertKnownArgs(["--password", "hunter2"], backendArgs)).toThrow(/password-file/);
    expect(() => assertKnownArgs(["--path=/x", "--api", "http://a"], backendArgs)).not.toThrow();
    expect(() => assertKnownArgs(["--path", "/x", "extra", "words"], backendArgs)).toThrow('unexpected argument "extra"');
    expect(() => assertKnownArgs(["--path", "/x", "--", "extra"], backendArgs)).not.toThrow();
  });
});

describe("environment files", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await makeTempDir("dqp-env-");
  });
  afterEach(async () => {
    await removeTempDir(dir);
  });

  test("parses the original plugin's env file format with systemd's EnvironmentFile quoting", () => {
    const env = parseEnvFile(
      [
        "# comment",
        "; also a comment",
        "QUOBYTE_API_URL=http://a:7860",
        'QUOBYTE_API_USER="ops"',
        "QUOBYTE_API_PASSWORD='p w=1'  ",
        "",
        '  QUOBYTE_TENANT_ID = "My \\"T\\" $HOME"',
        "QUOBYTE_MOUNT_OPTIONS=-o user_xattr \\",
        "  --x   ",
        "SOCKET_GROUP=",
      ].join("\n"),
    );
    expect(env).toEqual({
      QUOBYTE_API_URL: "http://a:7860",
      QUOBYTE_API_USER: "ops",
      QUOBYTE_API_PASSWORD: "p w=1",
      QUOBYTE_TENANT_ID: 'My "T" $HOME',
      QUOBYTE_MOUNT_OPTIONS: "-o user_xattr   --x",
      SOCKET_GROUP: "",
    });
  });

  test("blanks are systemd's (space, tab, CR, LF): a vertical tab or form feed is part of the value", () => {
    expect(parseEnvFile("A=\vx\f\nB= \t y \t\r\n# a \\ inside a comment is fine\nC=1\n")).toEqual({ A: "\vx\f", B: "y", C: "1" });
  });

  test("a line systemd would skip is an error naming the file and the line", () => {
    const cases: [string, RegExp][] = [
      ["# ok\nQUOBYTE_API_URL http://x\n", /^bad\.env line 2: "QUOBYTE_API_URL \.\.\." is not KEY=VALUE/],
      ["A=1\nexport QUOBYTE_API_USER=ops\n", /^bad\.env line 2: "export" is shell syntax; write QUOBYTE_API_USER=VALUE/],
      ["\n\n9KEY=1\n", /^bad\.env line 3: "9KEY" is not a variable name/],
      ['A=1\nB="open\n', /^bad\.env line 2: the quote opened for B is never closed/],
      ["garbage", /^bad\.env line 1: "garbage" is not KEY=VALUE/],
      // systemd 252 would take line 2 as part of the comment and drop the setting.
      ["A=1\n# old \\\nQUOBYTE_API_URL=http://x\n", /^bad\.env line 2: the comment ends in "\\", which systemd 252 continues onto line 3/],
      // A no-break space is no blank for systemd: the name is invalid, not "A".
      ["A\u00a0=1\n", /^bad\.env line 1: "A\u00a0" is not a variable name/],
    ];
    for (const [text, message] of cases) expect(() => parseEnvFile(text, "bad.env")).toThrow(message);
  });

  test("an unknown QUOBYTE_* variable is an error with the closest known name", () => {
    writeFileSync(`${dir}/typo.env`, "QUOBYTE_API_ULR=http://y\n");
    expect(() => loadEnvironment({ envFile: `${dir}/typo.env` }, {})).toThrow(/unknown variable QUOBYTE_API_ULR \(did you mean QUOBYTE_API_URL\?\)/);
    writeFileSync(`${dir}/other.env`, "QUOBYTE_SOMETHING_ELSE_ENTIRELY=t\n");
    expect(() => loadEnvironment({ envFile: `${dir}/other.env` }, {})).toThrow(/unknown variable QUOBYTE_SOMETHING_ELSE_ENTIRELY; known: QUOBYTE_API_URL/);
  });

  test("a stray QUOBYTE_* variable exported in the shell is not fatal (only env files are checked)", () => {
    expect(loadEnvironment({}, { QUOBYTE_TENNANT_ID: "t" }).env.QUOBYTE_TENNANT_ID).toBe("t");
  });

  test("an env file without an API URL makes the backend a required choice", () => {
    expect(() => resolveServeConfig({}, { SOCKET_GROUP: "docker" }, { api: true, envFile: "/etc/q.env" })).toThrow(
      /env file \/etc\/q\.env sets no QUOBYTE_API_URL, so the backend is unclear: add QUOBYTE_API_URL=.* or pass --backend posix/,
    );
    expect(resolveServeConfig({ backend: "posix" }, {}, { api: true, envFile: "/etc/q.env" }).backend).toBe("posix");
    expect(resolveServeConfig({}, quobyteEnv, { api: true, envFile: "/etc/q.env" }).backend).toBe("quobyte");
    expect(resolveServeConfig({}, {}).backend).toBe("posix");
  });

  test("process environment wins over the env file; --password-file wins over both", () => {
    writeFileSync(`${dir}/env`, "QUOBYTE_API_USER=fromfile\nQUOBYTE_TENANT_ID=t\nQUOBYTE_API_PASSWORD=filepw\n");
    writeFileSync(`${dir}/pw`, "secret-from-file\n");
    const { env } = loadEnvironment({ envFile: `${dir}/env`, passwordFile: `${dir}/pw` }, { QUOBYTE_API_USER: "fromenv" });
    expect(env.QUOBYTE_API_USER).toBe("fromenv");
    expect(env.QUOBYTE_TENANT_ID).toBe("t");
    expect(env.QUOBYTE_API_PASSWORD).toBe("secret-from-file");
  });

  test("a missing explicit env file or password file is a usage error", () => {
    expect(() => loadEnvironment({ envFile: `${dir}/nope` }, {})).toThrow(UsageError);
    expect(() => loadEnvironment({ passwordFile: `${dir}/nope` }, {})).toThrow(/password file/);
  });
});
