// Self-test of the e2e engine harness: a real dockerd in a private mount
// namespace, a locally imported busybox image, a restart, and a teardown that
// must leave no processes behind.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { join } from "node:path";
import {
  buildBusyboxImage,
  createWorkDir,
  ensureEnginePackages,
  isAlive,
  pidsWithCmdline,
  startEngine,
  startNamespace,
} from "./engine";
import type { Engine, Namespace } from "./engine";
import { forEachEngine } from "./engine-versions";

forEachEngine((flavour) => {
  let workDir = "";
  let ns: Namespace | undefined;
  let engine: Engine | undefined;

  // Non-null accessors so a failed beforeAll surfaces as a clear error per test.
  function theNs(): Namespace {
    if (ns === undefined) throw new Error("namespace not started");
    return ns;
  }
  function theEngine(): Engine {
    if (engine === undefined) throw new Error("engine not started");
    return engine;
  }

  async function waitFor(cond: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      if (Date.now() >= deadline) return false;
      await Bun.sleep(10);
    }
    return true;
  }

  describe("e2e engine harness", () => {
    beforeAll(async () => {
      await ensureEnginePackages();
      workDir = await createWorkDir();
      ns = await startNamespace(workDir);
      engine = await startEngine(ns, workDir, flavour);
      await buildBusyboxImage(engine);
    }, 120_000);

    afterAll(async () => {
      const dockerdPid = engine?.pid;
      const containerdPid = engine?.containerdPid();
      const holderPid = ns?.pid;
      await engine?.destroy();
      await ns?.stop();

      if (dockerdPid !== undefined) expect(isAlive(dockerdPid)).toBe(false);
      if (containerdPid !== undefined) expect(isAlive(containerdPid)).toBe(false);
      if (holderPid !== undefined) expect(isAlive(holderPid)).toBe(false);
      expect(pidsWithCmdline(workDir)).toEqual([]);
      expect(existsSync(workDir)).toBe(false);
    }, 60_000);

    test("nsenter execs the program itself: the subprocess pid is the program's pid", async () => {
      const n = theNs();
      const proc = n.spawn(["sleep", "30"], { stdout: "ignore", stderr: "ignore" });
      try {
        // comm reads "nsenter" until the exec has happened.
        const execd = await waitFor(() => {
          try {
            return readFileSync(`/proc/${proc.pid}/comm`, "utf8").trim() === "sleep";
          } catch {
            return false;
          }
        }, 5_000);
        expect(execd).toBe(true);
        expect(readlinkSync(`/proc/${proc.pid}/ns/mnt`)).toBe(n.mountNamespace);
        expect(n.mountNamespace).not.toBe(readlinkSync("/proc/self/ns/mnt"));
      } finally {
        proc.kill("SIGKILL");
        await proc.exited;
      }
    });

    test("the engine and its client are the requested version", async () => {
      const version = await theEngine().docker(["version", "--format", "{{.Client.Version}} {{.Server.Version}}"]);
      expect(version.code).toBe(0);
      const [client, server] = version.stdout.trim().split(" ");
      expect(client?.startsWith(flavour.versionPrefix)).toBe(true);
      expect(server?.startsWith(flavour.versionPrefix)).toBe(true);
    });

    test("engine.pid is dockerd's own pid (nsenter did not fork) and it runs in the namespace", () => {
      const e = theEngine();
      expect(Number(readFileSync(join(workDir, "docker.pid"), "utf8").trim())).toBe(e.pid);
      expect(readFileSync(`/proc/${e.pid}/comm`, "utf8").trim()).toBe("dockerd");
      expect(readlinkSync(`/proc/${e.pid}/ns/mnt`)).toBe(theNs().mountNamespace);
      expect(e.host).toBe(`unix://${workDir}/docker.sock`);
    });

    test("plugin dirs inside the namespace are private, empty tmpfs mounts", async () => {
      const n = theNs();
      for (const dir of ["/run/docker/plugins", "/etc/docker/plugins"]) {
        const ls = await n.run(["ls", "-A", dir]);
        expect(ls).toEqual({ code: 0, stdout: "", stderr: "" });

        const fstype = await n.run(["findmnt", "-n", "-o", "FSTYPE", "--mountpoint", dir]);
        expect(fstype.stdout.trim()).toBe("tmpfs");

        // Different filesystem than what the host sees at the same path.
        const dev = await n.run(["stat", "-c", "%d", dir]);
        expect(dev.code).toBe(0);
        expect(Number(dev.stdout.trim())).not.toBe(statSync(dir).dev);
      }

      // A file created inside must not show up on the host.
      const probe = "/run/docker/plugins/dqp-selftest-probe";
      expect((await n.run(["touch", probe])).code).toBe(0);
      expect(existsSync(probe)).toBe(false);
      expect((await n.run(["rm", probe])).code).toBe(0);
    });

    test(
      "runs a container with a named volume",
      async () => {
        const e = theEngine();
        const r = await e.docker([
          "run",
          "--rm",
          "--network",
          "none",
          "-v",
          "e2etestvol:/data",
          e.image,
          "sh",
          "-c",
          "echo hi > /data/x && cat /data/x",
        ]);
        if (r.code !== 0) console.error(e.log().slice(-4000));
        expect(r.stderr).toBe("");
        expect(r.code).toBe(0);
        expect(r.stdout).toBe("hi\n");

        const ls = await e.docker(["volume", "ls", "--format", "{{.Name}} {{.Driver}}"]);
        expect(ls.stdout.trim()).toBe("e2etestvol local");
        expect((await e.docker(["volume", "rm", "e2etestvol"])).code).toBe(0);
      },
      120_000,
    );

    test(
      "restart replaces dockerd and keeps the image",
      async () => {
        const e = theEngine();
        const oldPid = e.pid;
        const oldContainerd = e.containerdPid();
        expect(oldContainerd).toBeNumber();

        await e.restart();

        expect(e.pid).not.toBe(oldPid);
        expect(isAlive(oldPid)).toBe(false);
        if (oldContainerd !== undefined) expect(isAlive(oldContainerd)).toBe(false);
        expect(e.containerdPid()).toBeNumber();
        expect(Number(readFileSync(join(workDir, "docker.pid"), "utf8").trim())).toBe(e.pid);

        const r = await e.docker(["run", "--rm", "--network", "none", e.image, "id", "-u"]);
        expect(r.code).toBe(0);
        expect(r.stdout).toBe("0\n");
      },
      120_000,
    );
  });
});
