// A real Docker engine driving the quobyte backend of the compiled binary against the
// fake Quobyte API on loopback; the fake materialises volumes in a directory that stands
// in for the host's Quobyte mount (--mount-check none).

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { DEFAULT_USER, type FakeQuobyte, startFakeQuobyte } from "../support/fake-quobyte.ts";
import { type PluginProcess, startPlugin, stopPlugin } from "./plugin-process.ts";
import { createWorkDir, type Engine, type Namespace, startEngineWithImage } from "./support/engine.ts";
import { forEachEngine } from "./support/engine-versions.ts";

forEachEngine((flavour) => {
  let workDir = "";
  let ns: Namespace;
  let engine: Engine;
  let fake: FakeQuobyte;
  let plugin: PluginProcess | undefined;
  let mount = "";

  async function docker(...args: string[]): Promise<string> {
    const result = await engine.docker(args, { timeoutMs: 90_000 });
    if (result.code !== 0) throw new Error(`docker ${args.join(" ")} exited ${result.code}\n${result.stderr}\n--- plugin log:\n${plugin?.stderr().slice(-3000)}`);
    return result.stdout.trim();
  }

  beforeAll(async () => {
    workDir = await createWorkDir();
    mount = `${workDir}/quobyte-mnt`;
    await mkdir(mount);
    fake = await startFakeQuobyte({ mountTree: mount, mountDelayMs: 200 });
    // The operator's env file, as with the original Go plugin; the password lives only here.
    writeFileSync(
      `${workDir}/docker-quobyte.env`,
      [
        `QUOBYTE_API_URL=${fake.url}`,
        `QUOBYTE_API_USER=${DEFAULT_USER.name}`,
        `QUOBYTE_API_PASSWORD=${DEFAULT_USER.password}`,
        "QUOBYTE_TENANT_ID=My Tenant",
        `QUOBYTE_MOUNT_PATH=${mount}`,
      ].join("\n"),
      { mode: 0o600 },
    );
    ({ ns, engine } = await startEngineWithImage(workDir, flavour));
    plugin = await startPlugin(
      ["--env-file", `${workDir}/docker-quobyte.env`, "--mount-check", "none", "--name", "qb", "--state-dir", `${workDir}/state`, "--log-level", "debug", "--log-format", "json"],
      ns.fromOutside("/run/docker/plugins/qb.sock"),
      (argv) => ns.spawn(argv, { stdout: "pipe", stderr: "pipe" }),
    );
  }, 180_000);

  afterAll(async () => {
    if (plugin) await stopPlugin(plugin);
    await engine?.destroy();
    await ns?.stop();
    await fake?.stop();
  }, 120_000);

  describe("the quobyte backend with a real Docker engine", () => {
    test("create with options goes through the API; a container writes data; rm deletes the volume", async () => {
      await docker("volume", "create", "-d", "qb", "-o", "size=1G", "-o", "mode=0750", "-o", "user=nobody", "qv");
      const [volume] = fake.volumes();
      expect(volume).toMatchObject({ name: "qv", rootUserId: "nobody", accessMode: 750, quotaBytes: 2 ** 30 });

      const inspected = JSON.parse(await docker("volume", "inspect", "qv"))[0];
      expect(inspected).toMatchObject({ Driver: "qb", Scope: "global", Mountpoint: `${mount}/qv` });
      expect(inspected.Status).toMatchObject({ backend: "quobyte", uuid: volume?.uuid, quotaBytes: 2 ** 30 });

      await docker("run", "--rm", "--network", "none", "-v", "qv:/data", engine.image, "sh", "-c", "echo stored > /data/f");
      expect(readFileSync(`${mount}/qv/f`, "utf8")).toBe("stored\n");
      expect(await docker("run", "--rm", "--network", "none", "-v", "qv:/data", engine.image, "cat", "/data/f")).toBe("stored");

      await docker("volume", "rm", "qv");
      expect(fake.volumes()).toEqual([]);
      expect(existsSync(`${mount}/qv`)).toBe(false);
      expect(fake.log.some((entry) => entry.method === "deleteVolume")).toBe(true);
    });

    test("the password is in no argv, log line or Status", async () => {
      await docker("volume", "create", "-d", "qb", "secretcheck");
      const status = await docker("volume", "inspect", "secretcheck");
      const cmdline = readFileSync(`/proc/${plugin?.proc.pid}/cmdline`, "utf8");
      for (const text of [cmdline, plugin?.stderr() ?? "", status, engine.log()]) {
        expect(text).not.toContain(DEFAULT_USER.password);
      }
      // The log is not empty: it had every chance to leak.
      expect(plugin?.stderr()).toContain("secretcheck");
      await docker("volume", "rm", "secretcheck");
    });
  });
});
