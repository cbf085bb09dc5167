import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import { EngineClient } from "../support/engine-client.ts";
import { makeTempDir, removeTempDir } from "../support/tmp.ts";
import { BINARY, type PluginProcess, runBinary, startPlugin, stopPlugin } from "./plugin-process.ts";

let dir: string;
let plugin: PluginProcess | undefined;

beforeEach(async () => {
  dir = await makeTempDir("dqp-bin-");
});
afterEach(async () => {
  if (plugin) await stopPlugin(plugin, "SIGKILL");
  plugin = undefined;
  await removeTempDir(dir);
});

function serveArgs(extra: string[] = []): string[] {
  return ["--backend", "posix", "--path", `${dir}/volumes`, "--state-dir", `${dir}/state`, "--socket", `${dir}/p.sock`, ...extra];
}

describe("the compiled binary", () => {
  test("--help works on every command and names its flags", async () => {
    const root = await runBinary(["--help"]);
    expect(root.code).toBe(0);
    expect(root.stdout).toContain("serve");
    expect(root.stdout).toContain("mount-all");
    const serve = await runBinary(["serve", "--help"]);
    expect(serve.code).toBe(0);
    for (const flag of ["--backend", "--path", "--state-dir", "--name", "--socket", "--group", "--scope", "--log-level", "--log-format"]) {
      expect(serve.stdout).toContain(flag);
    }
    const mountAll = await runBinary(["mount-all", "--help"]);
    expect(mountAll.code).toBe(0);
    expect(mountAll.stdout).toContain("--path");
  });

  test("bad usage exits 2 with a clear message", async () => {
    const unknownFlag = await runBinary(["serve", "--sate-dir", "/tmp/x"]);
    expect(unknownFlag.code).toBe(2);
    expect(unknownFlag.stderr).toContain("unknown option --sate-dir");
    const badScope = await runBinary(["serve", "--scope", "planet"]);
    expect(badScope.code).toBe(2);
    expect(badScope.stderr).toContain("--scope");
    const unknownCommand = await runBinary(["frobnicate"]);
    expect(unknownCommand.code).toBe(2);
  });

  test("mount-all prepares and verifies the posix root", async () => {
    const result = await runBinary(["mount-all", "--path", `${dir}/volumes`]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("is ready");
    expect(statSync(`${dir}/volumes/.docker-quobyte-plugin`).isDirectory()).toBe(true);
  });

  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    test(`serve removes its socket on ${signal}`, async () => {
      plugin = await startPlugin(serveArgs(), `${dir}/p.sock`);
      expect(statSync(`${dir}/p.sock`).mode & 0o777).toBe(0o660);
      expect(await stopPlugin(plugin, signal)).toBe(0);
      expect(existsSync(`${dir}/p.sock`)).toBe(false);
    });
  }

  test("json logs: one line per request at debug, failures at warn with volume and code", async () => {
    plugin = await startPlugin(serveArgs(["--log-level", "debug", "--log-format", "json"]), `${dir}/p.sock`);
    const engine = new EngineClient(`${dir}/p.sock`);
    await engine.call("VolumeDriver.Create", { Name: "logged", Opts: null });
    await engine.call("VolumeDriver.Get", { Name: "absent" });
    engine.close();
    await stopPlugin(plugin);
    const lines = plugin.stderr().trim().split("\n").map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines.some((l) => l.level === "debug" && l.endpoint === "VolumeDriver.Create" && l.volume === "logged")).toBe(true);
    expect(lines.some((l) => l.level === "warn" && l.volume === "absent" && l.code === "VOLUME_NOT_FOUND")).toBe(true);
  });

  test("after SIGKILL a restarted plugin still knows the mounts and accepts their Unmount", async () => {
    plugin = await startPlugin(serveArgs(), `${dir}/p.sock`);
    let engine = new EngineClient(`${dir}/p.sock`);
    const id = "c".repeat(64);
    await engine.call("VolumeDriver.Create", { Name: "held" });
    expect((await engine.call("VolumeDriver.Mount", { Name: "held", ID: id })).json).toEqual({
      Mountpoint: `${dir}/volumes/held`,
    });
    engine.close();
    await stopPlugin(plugin, "SIGKILL");
    expect(existsSync(`${dir}/p.sock`)).toBe(true); // stale: the restart must replace it

    plugin = await startPlugin(serveArgs(), `${dir}/p.sock`);
    engine = new EngineClient(`${dir}/p.sock`);
    try {
      expect((await engine.call("VolumeDriver.Remove", { Name: "held" })).json).toMatchObject({
        Err: expect.stringContaining("VOLUME_IN_USE"),
      });
      expect((await engine.call("VolumeDriver.Get", { Name: "held" })).json).toMatchObject({
        Volume: { Name: "held", Status: { mounts: 1 } },
      });
      expect((await engine.call("VolumeDriver.Unmount", { Name: "held", ID: id })).json).toEqual({});
      expect((await engine.call("VolumeDriver.Remove", { Name: "held" })).json).toEqual({});
    } finally {
      engine.close();
    }
  });

  test("status and /metrics report a known sequence of requests", async () => {
    plugin = await startPlugin(serveArgs(), `${dir}/p.sock`);
    const engine = new EngineClient(`${dir}/p.sock`);
    try {
      await engine.call("VolumeDriver.Create", { Name: "alpha" });
      await engine.call("VolumeDriver.Create", { Name: "beta" });
      await engine.call("VolumeDriver.Mount", { Name: "alpha", ID: "1".repeat(64) });
      await engine.call("VolumeDriver.Mount", { Name: "alpha", ID: "2".repeat(64) });
      await engine.call("VolumeDriver.Get", { Name: "missing" });
    } finally {
      engine.close();
    }
    const status = await runBinary(["status", "--socket", `${dir}/p.sock`, "--json"]);
    expect(status.code).toBe(0);
    const report = JSON.parse(status.stdout) as { storage: { state: string }; volumes: { name: string; mounts: number }[] };
    expect(report.storage.state).toBe("live");
    expect(report.volumes.map((v) => [v.name, v.mounts]).sort()).toEqual([
      ["alpha", 2],
      ["beta", 0],
    ]);
    const table = await runBinary(["status", "--socket", `${dir}/p.sock`]);
    expect(table.stdout).toMatch(/alpha\s+2/);

    const metrics = await (await fetch("http://plugin/metrics", { unix: `${dir}/p.sock` })).text();
    expect(metrics).toContain('dqp_requests_total{endpoint="VolumeDriver.Create",outcome="ok"} 2');
    expect(metrics).toContain('dqp_requests_total{endpoint="VolumeDriver.Mount",outcome="ok"} 2');
    expect(metrics).toContain('dqp_requests_total{endpoint="VolumeDriver.Get",outcome="error"} 1');
    expect(metrics).toContain('dqp_errors_total{code="VOLUME_NOT_FOUND"} 1');
    expect(metrics).toContain('dqp_request_duration_seconds_count{endpoint="VolumeDriver.Create"} 2');
    expect(metrics).toContain("dqp_volumes 2");
    expect(metrics).toContain("dqp_active_mounts 2");
    expect(metrics).toContain("dqp_storage_up 1");
    const health = await fetch("http://plugin/health", { unix: `${dir}/p.sock` });
    expect(health.status).toBe(200);
    expect(((await health.json()) as { status: string }).status).toBe("ok");
  });

  test("install --prefix stages the binary and the unit under the prefix only", async () => {
    const prefix = `${dir}/stage`;
    const dry = await runBinary(["install", "--prefix", prefix, "--backend", "quobyte", "--dry-run"]);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain("ExecStartPre=/usr/local/bin/docker-quobyte-plugin mount-all");
    expect(existsSync(prefix)).toBe(false);

    const result = await runBinary(["install", "--prefix", prefix, "--backend", "quobyte"]);
    expect(result.code).toBe(0);
    const files = (await Array.fromAsync(new Bun.Glob("**").scan({ cwd: prefix, dot: true }))).sort();
    expect(files).toEqual([
      "etc/systemd/system/docker-quobyte-plugin.service",
      "etc/systemd/system/docker-quobyte-plugin.socket",
      "usr/local/bin/docker-quobyte-plugin",
    ]);
    const socketUnit = await Bun.file(`${prefix}/etc/systemd/system/docker-quobyte-plugin.socket`).text();
    for (const line of ["ListenStream=/run/docker/plugins/quobyte.sock", "SocketMode=0660", "Before=docker.service", "WantedBy=sockets.target"]) {
      expect(socketUnit.split("\n")).toContain(line);
    }
    expect(statSync(`${prefix}/usr/local/bin/docker-quobyte-plugin`).mode & 0o777).toBe(0o755);
    const unit = await Bun.file(`${prefix}/etc/systemd/system/docker-quobyte-plugin.service`).text();
    for (const line of [
      "Before=docker.service",
      "After=network-online.target",
      "ExecStartPre=/usr/local/bin/docker-quobyte-plugin mount-all --backend quobyte",
      "ExecStart=/usr/local/bin/docker-quobyte-plugin serve --backend quobyte --log-format json",
      "Restart=on-failure",
      "LimitNOFILE=16384",
    ]) {
      expect(unit.split("\n")).toContain(line);
    }
    const installed = await runBinary([]);
    expect(installed.code).toBe(2);
    const copy = Bun.spawn([`${prefix}/usr/local/bin/docker-quobyte-plugin`, "--version"], { stdout: "pipe" });
    expect((await new Response(copy.stdout).text()).trim()).toMatch(/^\d+\.\d+\.\d+$/);

    const posix = await runBinary(["install", "--prefix", `${dir}/stage2`, "--backend", "posix", "--dry-run"]);
    expect(posix.stdout).not.toContain("ExecStartPre");
  });

  test("socket activation: serve takes the listening socket from systemd-socket-activate", async () => {
    const socket = `${dir}/activated-public.sock`;
    const activator = Bun.spawn(
      ["systemd-socket-activate", "-l", socket, BINARY, "serve", "--path", `${dir}/volumes`, "--state-dir", `${dir}/state`, "--log-level", "debug"],
      { stdout: "ignore", stderr: "pipe" },
    );
    try {
      const deadline = Date.now() + 10_000;
      while (!existsSync(socket) && Date.now() < deadline) await Bun.sleep(20);
      // The first connection starts the plugin, which must answer it.
      const engine = new EngineClient(socket);
      try {
        expect((await engine.call("Plugin.Activate")).json).toEqual({ Implements: ["VolumeDriver"] });
        expect((await engine.call("VolumeDriver.Create", { Name: "activated" })).json).toEqual({});
        expect((await engine.call("VolumeDriver.Mount", { Name: "activated", ID: "a".repeat(64) })).json).toEqual({
          Mountpoint: `${dir}/volumes/activated`,
        });
      } finally {
        engine.close();
      }
      expect(statSync(`${dir}/volumes/activated`).isDirectory()).toBe(true);
    } finally {
      activator.kill("SIGTERM");
      await activator.exited;
    }
    expect(existsSync(`${dir}/state/activated.sock`)).toBe(false);
  });

  test("reads no .env and runs no bunfig.toml preload from its working directory", async () => {
    // Bun's compiled executables load both from the working directory unless the build
    // says otherwise: a writable directory a root daemon starts in would set its storage
    // (an API URL makes the backend quobyte) or run code in it.
    const cwd = `${dir}/cwd`;
    mkdirSync(cwd);
    writeFileSync(`${cwd}/.env`, "QUOBYTE_API_URL=http://127.0.0.1:9/\nQUOBYTE_TENANT_ID=t\nQUOBYTE_API_PASSWORD=p\n");
    writeFileSync(`${cwd}/preload.js`, `require("node:fs").writeFileSync(${JSON.stringify(`${dir}/preloaded`)}, "ran");\n`);
    writeFileSync(`${cwd}/bunfig.toml`, 'preload = ["./preload.js"]\n');
    const proc = Bun.spawn([BINARY, "mount-all", "--path", `${dir}/volumes`], { cwd, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
    expect(stdout).toContain(`posix volume root ${dir}/volumes is ready`);
    expect(existsSync(`${dir}/preloaded`)).toBe(false);
  });
});
