// Several "hosts" on one machine for multi-host tests: each host is the compiled plugin
// running in its own UTS namespace (its own hostname, hence its own default --host-id) and
// its own mount namespace, with its own --state-dir and socket. Hosts can be SIGKILLed and
// restarted with the same state, like a machine whose plugin crashed.
//
//   const cluster = await startHosts({ names: ["host-a", "host-b"], workDir, pluginArgs: (h) => [...] });
//   await cluster.host("host-a").call("VolumeDriver.Create", { Name: "v" });
//   await cluster.host("host-a").kill(); await cluster.host("host-a").start();
//   await cluster.stop();
//
// Storage is up to the test: `prepare` runs once per host before its plugin starts (for
// example to give it its own FUSE mount of a GlusterFS volume), `release` before it is torn
// down. With `network`, hosts share that holder's network namespace (GlusterFS's ports
// live there); otherwise they stay in the test's (the fake Quobyte API on loopback).

import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { type PluginProcess, startPlugin, stopPlugin } from "../e2e/plugin-process.ts";
import { EngineClient, type EngineReply } from "./engine-client.ts";
import { type NsHolder, startHolder } from "./ns-holder.ts";

export interface Host {
  readonly name: string;
  /** The namespaces of this host (hostname = name). */
  readonly ns: NsHolder;
  readonly dir: string;
  readonly stateDir: string;
  readonly socketPath: string;
  /** The running plugin, or undefined after kill(). */
  readonly plugin: PluginProcess | undefined;
  /** One engine-shaped request to this host's plugin (a fresh connection each time). */
  call(method: string, body?: unknown): Promise<EngineReply>;
  /** `path` as this host's mount namespace sees it (through its own mounts), for test I/O. */
  viewOf(path: string): string;
  /** Starts (or restarts) the plugin with the same state dir and socket; `env` adds variables. */
  start(env?: Record<string, string>): Promise<void>;
  /** SIGKILLs the plugin (a crash): nothing is cleaned up, its state stays. */
  kill(): Promise<void>;
  /** SIGTERM, a clean stop. */
  stopPlugin(): Promise<void>;
}

export interface HostsOptions {
  names: string[];
  /** Each host gets `<workDir>/<name>/` for its state dir and socket. */
  workDir: string;
  /** serve arguments besides --state-dir and --socket. */
  pluginArgs(host: Host): string[];
  prepare?(host: Host): Promise<void>;
  release?(host: Host): Promise<void>;
  network?: NsHolder;
}

export interface Hosts {
  readonly all: Host[];
  host(name: string): Host;
  /** Stops every plugin by PID, runs `release`, then ends each host's namespaces. Idempotent. */
  stop(): Promise<void>;
}

export async function startHosts(options: HostsOptions): Promise<Hosts> {
  const all: Host[] = [];
  const stop = async () => {
    for (const host of all.splice(0).reverse()) {
      await host.kill().catch(() => {});
      await options.release?.(host).catch(() => {});
      await host.ns.stop();
    }
  };
  try {
    for (const name of options.names) all.push(await makeHost(name, options));
    for (const host of all) await options.prepare?.(host);
    await Promise.all(all.map((host) => host.start()));
  } catch (error) {
    const logs = all.map((h) => `--- ${h.name}:\n${h.plugin?.stderr() ?? ""}`).join("\n");
    await stop();
    throw new Error(`starting hosts failed: ${String(error)}\n${logs}`);
  }
  return {
    all,
    host(name) {
      const found = all.find((h) => h.name === name);
      if (!found) throw new Error(`no host ${name}`);
      return found;
    },
    stop,
  };
}

async function makeHost(name: string, options: HostsOptions): Promise<Host> {
  const dir = join(options.workDir, name);
  await mkdir(dir, { recursive: true });
  const ns = await startHolder(["u", "m"], options.network);
  await ns.run(["hostname", name]);
  const socketPath = join(dir, "plugin.sock");
  const stateDir = join(dir, "state");
  let plugin: PluginProcess | undefined;
  const host: Host = {
    name,
    ns,
    dir,
    stateDir,
    socketPath,
    get plugin() {
      return plugin;
    },
    async call(method, body) {
      const client = new EngineClient(socketPath);
      try {
        return await client.call(method, body);
      } finally {
        client.close();
      }
    },
    viewOf: (path) => `/proc/${ns.pid}/root${path}`,
    async start(env) {
      if (plugin && plugin.proc.exitCode === null) throw new Error(`${name}: the plugin is running already`);
      const args = ["--state-dir", stateDir, "--socket", socketPath, ...options.pluginArgs(host)];
      // nsenter execs the plugin in place, so the process we hold is the plugin itself.
      plugin = await startPlugin(args, socketPath, (argv) =>
        Bun.spawn([...ns.enter(), ...argv], { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env } }),
      );
    },
    async kill() {
      if (plugin) await stopPlugin(plugin, "SIGKILL");
      plugin = undefined;
    },
    async stopPlugin() {
      if (plugin) await stopPlugin(plugin, "SIGTERM");
      plugin = undefined;
    },
  };
  return host;
}
