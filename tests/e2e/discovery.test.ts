// The engine finds the plugin through spec files written by `write-spec`: a .spec with a
// unix:// address, a .spec with a loopback tcp:// address, and a .json with TLS where the
// plugin requires a client certificate (mutual TLS). Certificates are made here with openssl.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { makeCertificates } from "../support/certs.ts";
import { BINARY } from "./plugin-process.ts";
import { createWorkDir, type Engine, type Namespace, runArgv, startEngineWithImage } from "./support/engine.ts";
import { forEachEngine } from "./support/engine-versions.ts";

forEachEngine((flavour) => {
  let workDir = "";
  let ns: Namespace;
  let engine: Engine;
  const plugins: Subprocess[] = [];

  async function freePort(): Promise<number> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as { port: number }).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return port;
  }

  /** Starts `serve` in the engine's namespace and waits until `probe` answers. */
  async function serve(args: string[], probe: () => Promise<Response>): Promise<void> {
    const proc = ns.spawn([BINARY, "serve", "--backend", "posix", "--path", `${workDir}/volumes`, ...args], { stdout: "ignore", stderr: "pipe" });
    plugins.push(proc);
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        if ((await probe()).status === 200) return;
      } catch {
        // not listening yet
      }
      if (proc.exitCode !== null) throw new Error(`serve exited ${proc.exitCode}: ${await new Response(proc.stderr).text()}`);
      if (Date.now() > deadline) throw new Error("serve did not become ready");
      await Bun.sleep(50);
    }
  }

  async function writeSpec(...args: string[]): Promise<string> {
    const result = await ns.run([BINARY, "write-spec", "--dir", "/etc/docker/plugins", ...args]);
    if (result.code !== 0) throw new Error(`write-spec ${args.join(" ")}: ${result.stderr}`);
    return result.stdout;
  }

  async function useVolumeThrough(driver: string): Promise<void> {
    const name = `vol-${driver}`;
    for (const args of [
      ["volume", "create", "-d", driver, name],
      ["run", "--rm", "--network", "none", "-v", `${name}:/data`, engine.image, "sh", "-c", `echo ${driver} > /data/f`],
    ]) {
      const result = await engine.docker(args, { timeoutMs: 90_000 });
      if (result.code !== 0) throw new Error(`docker ${args.join(" ")}: ${result.stderr}`);
    }
    expect(readFileSync(join(workDir, "volumes", name, "f"), "utf8")).toBe(`${driver}\n`);
    expect((await engine.docker(["volume", "rm", name])).code).toBe(0);
    expect(existsSync(join(workDir, "volumes", name))).toBe(false);
  }

  beforeAll(async () => {
    workDir = await createWorkDir();
    await makeCertificates(workDir);
    ({ ns, engine } = await startEngineWithImage(workDir, flavour));
  }, 180_000);

  afterAll(async () => {
    for (const proc of plugins) {
      proc.kill("SIGTERM");
      await proc.exited;
    }
    await engine?.destroy();
    await ns?.stop();
  }, 120_000);

  describe("discovery through spec files", () => {
    test("a .spec with a unix:// address", async () => {
      const socket = join(workDir, "elsewhere.sock");
      await serve(["--socket", socket, "--state-dir", `${workDir}/state-unix`], () => fetch("http://p/Plugin.Activate", { method: "POST", unix: socket }));
      expect(await writeSpec("--name", "viaunix", "--address", `unix://${socket}`)).toContain("viaunix.spec");
      await useVolumeThrough("viaunix");
    });

    test("a .spec with a loopback tcp:// address", async () => {
      const port = await freePort();
      await serve(["--listen", `tcp://127.0.0.1:${port}`, "--state-dir", `${workDir}/state-tcp`], () =>
        fetch(`http://127.0.0.1:${port}/Plugin.Activate`, { method: "POST" }),
      );
      // Plain TCP is refused without --insecure.
      expect((await ns.run([BINARY, "write-spec", "--dir", "/etc/docker/plugins", "--name", "viatcp", "--address", `tcp://127.0.0.1:${port}`])).code).toBe(2);
      await writeSpec("--name", "viatcp", "--address", `tcp://127.0.0.1:${port}`, "--insecure");
      await useVolumeThrough("viatcp");
    });

    test("a .json with TLS, the plugin requiring a client certificate", async () => {
      const port = await freePort();
      const file = (name: string) => join(workDir, name);
      const ca = readFileSync(file("ca.pem"), "utf8");
      await serve(
        ["--listen", `tcp://127.0.0.1:${port}`, "--tls-cert", file("server.pem"), "--tls-key", file("server.key"), "--tls-ca", file("ca.pem"), "--state-dir", `${workDir}/state-tls`],
        () =>
          fetch(`https://127.0.0.1:${port}/Plugin.Activate`, {
            method: "POST",
            tls: { ca, cert: readFileSync(file("client.pem"), "utf8"), key: readFileSync(file("client.key"), "utf8") },
          }),
      );
      // Without a client certificate the plugin refuses the connection.
      await expect(fetch(`https://127.0.0.1:${port}/Plugin.Activate`, { method: "POST", tls: { ca } })).rejects.toThrow();
      const written = await writeSpec("--name", "viatls", "--address", `https://127.0.0.1:${port}`, "--tls-ca", file("ca.pem"), "--tls-cert", file("client.pem"), "--tls-key", file("client.key"));
      expect(written).toContain("viatls.json");
      await useVolumeThrough("viatls");
    });

    test("serve refuses plain TCP on a non-loopback address", async () => {
      const result = await runArgv([BINARY, "serve", "--path", `${workDir}/v2`, "--state-dir", `${workDir}/s2`, "--listen", "tcp://0.0.0.0:9999"]);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain("needs --tls-cert, --tls-key and --tls-ca");
    });
  });
});
