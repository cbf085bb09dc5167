// `npm run package:plugin` output installed as a Docker managed plugin on the real engine:
// plugin create and enable, a volume created through it, a container writing data that
// lands under the plugin's propagated mount, rm through it.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createWorkDir, type Engine, type Namespace, runArgv, startEngineWithImage } from "./support/engine.ts";
import { forEachEngine } from "./support/engine-versions.ts";

forEachEngine((flavour) => {
  const PACKAGER = join(import.meta.dir, "../../scripts/package-plugin.ts");
  const PLUGIN = "dqp-managed:e2e";

  let workDir = "";
  let ns: Namespace;
  let engine: Engine;

  async function docker(...args: string[]): Promise<string> {
    const result = await engine.docker(args, { timeoutMs: 120_000 });
    if (result.code !== 0) throw new Error(`docker ${args.join(" ")} exited ${result.code}\n${result.stderr}\n--- dockerd:\n${engine.log().slice(-3000)}`);
    return result.stdout.trim();
  }

  beforeAll(async () => {
    workDir = await createWorkDir();
    ({ ns, engine } = await startEngineWithImage(workDir, flavour));
  }, 180_000);

  afterAll(async () => {
    await engine?.docker(["plugin", "disable", "-f", PLUGIN]).catch(() => {});
    await engine?.docker(["plugin", "rm", "-f", PLUGIN]).catch(() => {});
    await engine?.destroy();
    await ns?.stop();
  }, 120_000);

  describe("as a managed plugin", () => {
    test("package, create, enable, use a volume, remove it", async () => {
      const packaged = await runArgv([process.execPath, PACKAGER, join(workDir, "plugin")], { timeoutMs: 120_000 });
      expect(packaged.code).toBe(0);
      const dir = packaged.stdout.trim();
      const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
      expect(config).toMatchObject({
        interface: { socket: "dqp.sock", types: ["docker.volumedriver/1.0"] },
        propagatedMount: "/data",
        network: { type: "host" },
        linux: { capabilities: ["CAP_SYS_ADMIN"], devices: [{ path: "/dev/fuse" }] },
      });
      expect(existsSync(join(dir, "rootfs/usr/local/bin/docker-quobyte-plugin"))).toBe(true);

      await docker("plugin", "create", PLUGIN, dir);
      await docker("plugin", "enable", PLUGIN);
      const id = await docker("plugin", "inspect", "-f", "{{.Id}}", PLUGIN);

      await docker("volume", "create", "-d", PLUGIN, "-o", "mode=0750", "managed");
      const inspected = JSON.parse(await docker("volume", "inspect", "managed"))[0];
      expect(inspected.Driver).toBe(PLUGIN);
      await docker("run", "--rm", "--network", "none", "-v", "managed:/data", engine.image, "sh", "-c", "echo via-managed > /data/f");
      const onHost = join(engine.dataRoot, "plugins", id, "propagated-mount", "volumes", "managed");
      expect(readFileSync(join(onHost, "f"), "utf8")).toBe("via-managed\n");

      await docker("volume", "rm", "managed");
      expect(existsSync(onHost)).toBe(false);
      await docker("plugin", "disable", PLUGIN);
    });
  });
});
