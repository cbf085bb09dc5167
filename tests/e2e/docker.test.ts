// The plugin as a real Docker engine uses it: the compiled binary serving on the
// default socket path inside a private mount namespace shared with a private dockerd.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { EngineClient } from "../support/engine-client.ts";
import { createWorkDir, type Engine, type Namespace, startEngineWithImage } from "./support/engine.ts";
import { mountCountOf, type PluginProcess, startPlugin, stopPlugin } from "./plugin-process.ts";
import { forEachEngine } from "./support/engine-versions.ts";

forEachEngine((flavour) => {
  let workDir = "";
  let ns: Namespace;
  let engine: Engine;
  let plugin: PluginProcess | undefined;
  let volumes = "";

  /** The plugin's socket as seen from outside the namespace. */
  function socketPath(): string {
    return ns.fromOutside("/run/docker/plugins/quobyte.sock");
  }

  async function startOurPlugin(): Promise<void> {
    plugin = await startPlugin(
      ["--backend", "posix", "--path", volumes, "--state-dir", `${workDir}/state`, "--log-level", "debug", "--log-format", "json"],
      socketPath(),
      (argv) => ns.spawn(argv, { stdout: "pipe", stderr: "pipe" }),
    );
  }

  /** Runs docker and fails the test with its output when it does not succeed. */
  async function docker(...args: string[]): Promise<string> {
    const result = await engine.docker(args, { timeoutMs: 90_000 });
    if (result.code !== 0) {
      throw new Error(`docker ${args.join(" ")} exited ${result.code}\n${result.stderr}\n--- plugin log:\n${plugin?.stderr().slice(-3000)}`);
    }
    return result.stdout.trim();
  }

  async function dockerFails(...args: string[]): Promise<string> {
    const result = await engine.docker(args, { timeoutMs: 90_000 });
    expect(result.code).not.toBe(0);
    return result.stderr;
  }

  const mountsOf = (name: string): Promise<number> => mountCountOf(socketPath(), name);

  function image(): string {
    return engine.image;
  }

  beforeAll(async () => {
    workDir = await createWorkDir();
    volumes = `${workDir}/volumes`;
    ({ ns, engine } = await startEngineWithImage(workDir, flavour));
    await startOurPlugin();
  }, 180_000);

  afterAll(async () => {
    await engine?.docker(["rm", "-f", ...(await engine.docker(["ps", "-aq"])).stdout.split("\n").filter(Boolean)]).catch(() => {});
    if (plugin) await stopPlugin(plugin);
    await engine?.destroy();
    await ns?.stop();
  }, 120_000);

  describe("with a real Docker engine", () => {
    test("volume create with options, ls, inspect", async () => {
      await docker("volume", "create", "-d", "quobyte", "-o", "user=nobody", "-o", "group=nogroup", "-o", "mode=2770", "shared");
      const info = statSync(`${volumes}/shared`);
      expect(info.uid).toBe(65534);
      expect(info.gid).toBe(65534);
      expect(info.mode & 0o7777).toBe(0o2770);

      const listed = await docker("volume", "ls", "--format", "{{.Driver}} {{.Name}}");
      expect(listed.split("\n")).toContain("quobyte shared");

      const inspected = JSON.parse(await docker("volume", "inspect", "shared"))[0];
      expect(inspected.Driver).toBe("quobyte");
      expect(inspected.Mountpoint).toBe(`${volumes}/shared`);
      expect(inspected.Scope).toBe("local");
      expect(inspected.Status).toMatchObject({ backend: "posix", options: { mode: "2770" } });
      expect(Number.isNaN(Date.parse(inspected.CreatedAt))).toBe(false);
      expect(inspected.CreatedAt.startsWith("0001")).toBe(false);

      const refused = await dockerFails("volume", "create", "-d", "quobyte", "-o", "colour=blue", "bad");
      expect(refused).toContain('unknown volume option "colour"');
      expect(existsSync(`${volumes}/bad`)).toBe(false);
    });

    test("data written by one container is read by another", async () => {
      await docker("run", "--rm", "--network", "none", "-v", "shared:/data", image(), "sh", "-c", "echo hello > /data/greeting");
      const read = await docker("run", "--rm", "--network", "none", "-v", "shared:/data", image(), "cat", "/data/greeting");
      expect(read).toBe("hello");
      expect(readFileSync(`${volumes}/shared/greeting`, "utf8")).toBe("hello\n");
      expect(await mountsOf("shared")).toBe(0);
    });

    test("--mount with volume-driver and volume-opt creates the volume on first use", async () => {
      await docker(
        "run", "--rm", "--network", "none",
        "--mount", "type=volume,src=viamount,dst=/data,volume-driver=quobyte,volume-opt=mode=0700",
        image(), "sh", "-c", "echo x > /data/f",
      );
      expect(statSync(`${volumes}/viamount`).mode & 0o7777).toBe(0o700);
      expect(readFileSync(`${volumes}/viamount/f`, "utf8")).toBe("x\n");
    });

    test("rm while in use is refused; docker cp into the running container counts the same mount ID twice", async () => {
      const container = await docker("run", "-d", "--init", "--network", "none", "-v", "shared:/data", image(), "sleep", "600");
      expect(await mountsOf("shared")).toBe(1);

      // Docker refuses on its own; the plugin refuses too when asked directly.
      expect(await dockerFails("volume", "rm", "shared")).toContain("in use");
      const direct = new EngineClient(socketPath());
      const reply = (await direct.call("VolumeDriver.Remove", { Name: "shared" })).json as { Err?: string };
      direct.close();
      expect(reply.Err).toContain("VOLUME_IN_USE");

      writeFileSync(`${workDir}/copied.txt`, "copied in\n");
      await docker("cp", `${workDir}/copied.txt`, `${container}:/data/copied.txt`);
      expect(readFileSync(`${volumes}/shared/copied.txt`, "utf8")).toBe("copied in\n");
      expect(await mountsOf("shared")).toBe(1);

      await docker("rm", "-f", container);
      expect(await mountsOf("shared")).toBe(0);
      expect(existsSync(`${volumes}/shared/greeting`)).toBe(true);
    });

    test("volume rm deletes the data", async () => {
      await docker("volume", "rm", "viamount");
      expect(existsSync(`${volumes}/viamount`)).toBe(false);
      expect(await docker("volume", "ls", "-q")).not.toContain("viamount");
    });

    test("anonymous volumes are created and removed with the container", async () => {
      const before = (await docker("volume", "ls", "-q")).split("\n").filter(Boolean);
      await docker("run", "--rm", "--network", "none", "-v", "/scratch", "--volume-driver", "quobyte", image(), "sh", "-c", "echo tmp > /scratch/t");
      const after = (await docker("volume", "ls", "-q")).split("\n").filter(Boolean);
      expect(after.sort()).toEqual(before.sort());
      // It went through this plugin: created and removed under a random 64-hex name.
      const removed = (plugin?.stderr() ?? "")
        .split("\n")
        .filter((line) => line.includes('"endpoint":"VolumeDriver.Remove"'))
        .map((line) => (JSON.parse(line) as { volume: string }).volume);
      expect(removed.some((name) => /^[0-9a-f]{64}$/.test(name))).toBe(true);
      expect(removed.filter((name) => /^[0-9a-f]{64}$/.test(name)).every((name) => !existsSync(`${volumes}/${name}`))).toBe(true);
    });

    for (const signal of ["SIGTERM", "SIGKILL"] as const) {
      test(`plugin restart by ${signal} while a container holds a volume`, async () => {
        await docker("volume", "create", "-d", "quobyte", `held-${signal}`);
        const container = await docker("run", "-d", "--init", "--network", "none", "-v", `held-${signal}:/data`, image(), "sleep", "600");
        expect(await mountsOf(`held-${signal}`)).toBe(1);
        if (plugin) await stopPlugin(plugin, signal);
        await startOurPlugin();
        expect(await mountsOf(`held-${signal}`)).toBe(1);

        // The stop's Unmount carries the ID issued before the restart; it must succeed.
        await docker("stop", "-t", "2", container);
        expect(await mountsOf(`held-${signal}`)).toBe(0);
        expect(engine.log()).not.toContain(`error unmounting volume held-${signal}`);
        await docker("rm", container);
        await docker("volume", "rm", `held-${signal}`);
        expect(existsSync(`${volumes}/held-${signal}`)).toBe(false);
      });
    }

    test("volumes and their data survive a dockerd restart", async () => {
      await engine.restart();
      expect((await docker("volume", "ls", "--format", "{{.Driver}} {{.Name}}")).split("\n")).toContain("quobyte shared");
      const read = await docker("run", "--rm", "--network", "none", "-v", "shared:/data", image(), "cat", "/data/greeting");
      expect(read).toBe("hello");
    });

    test("dockerd restarted while the plugin is down: volumes come back once the plugin starts", async () => {
      if (plugin) await stopPlugin(plugin);
      plugin = undefined;
      // The engine waits ~15 s per volume of a missing plugin at start; keep just one.
      const ours = (await docker("volume", "ls", "-q", "--filter", "driver=quobyte")).split("\n").filter((name) => name && name !== "shared");
      expect(ours).toEqual([]);
      await engine.restart();
      await startOurPlugin();
      expect((await docker("volume", "ls", "--format", "{{.Driver}} {{.Name}}")).split("\n")).toContain("quobyte shared");
      expect(await docker("run", "--rm", "--network", "none", "-v", "shared:/data", image(), "cat", "/data/greeting")).toBe("hello");
    }, 180_000);
  });
});
