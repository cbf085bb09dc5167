// One "host" of a multi-host Docker test: its own network namespace (one side of a veth
// pair), mount and UTS namespace (own hostname, own /run/docker/plugins), its own dockerd
// and its own plugin instances. Everything is stopped by PID in destroy().

import { rm } from "node:fs/promises";
import { type PluginProcess, startPlugin, stopPlugin } from "../plugin-process.ts";
import {
  buildBusyboxImage,
  createWorkDir,
  type Engine,
  ensureEnginePackages,
  type Namespace,
  type RunResult,
  startEngine,
  startNamespace,
} from "./engine.ts";
import type { VethHost } from "./veth-pair.ts";

export class SwarmNode {
  engine: Engine | undefined;
  readonly plugins = new Map<string, PluginProcess>();

  private constructor(
    readonly hostname: string,
    readonly address: string,
    readonly workDir: string,
    readonly ns: Namespace,
  ) {}

  /** The namespaces only; the engine comes with startEngine(), plugins with startPlugin(). */
  static async create(hostname: string, net: VethHost): Promise<SwarmNode> {
    await ensureEnginePackages();
    const workDir = await createWorkDir();
    const ns = await startNamespace(workDir, { hostname, netns: net.netns });
    return new SwarmNode(hostname, net.address, workDir, ns);
  }

  /** The engine's API socket, which the plugins nudge (see src/system/engine-nudge.ts). */
  get engineSocket(): string {
    return `${this.workDir}/docker.sock`;
  }

  async startEngine(): Promise<Engine> {
    this.engine = await startEngine(this.ns, this.workDir);
    await buildBusyboxImage(this.engine);
    return this.engine;
  }

  /** Starts `serve --name <driver> ...args` inside the node; it nudges this node's engine unless `nudge` is false. */
  async startPlugin(driver: string, args: string[], { nudge = true } = {}): Promise<PluginProcess> {
    const plugin = await startPlugin(
      ["--name", driver, "--engine-socket", nudge ? this.engineSocket : "none", "--state-dir", `${this.workDir}/state-${driver}`, "--log-level", "debug", "--log-format", "json", ...args],
      this.ns.fromOutside(`/run/docker/plugins/${driver}.sock`),
      // The plugin keeps the host's network: it reaches storage APIs on loopback, and its
      // engine reaches it through the socket in this node's /run/docker/plugins.
      (argv) => this.ns.spawn(argv, { stdout: "pipe", stderr: "pipe", hostNetwork: true }),
    );
    this.plugins.set(driver, plugin);
    return plugin;
  }

  /** `docker` against this node's engine; a failing command is a result, not an exception. */
  async dockerResult(args: string[], timeoutMs = 90_000): Promise<RunResult> {
    if (!this.engine) throw new Error(`${this.hostname}: engine not started`);
    return this.engine.docker(args, { timeoutMs });
  }

  /** `docker` against this node's engine; throws with the output and the plugins' logs on failure. */
  async docker(...args: string[]): Promise<string> {
    const result = await this.dockerResult(args);
    if (result.code !== 0) {
      throw new Error(`${this.hostname}: docker ${args.join(" ")} exited ${result.code}\n${result.stderr}\n${this.pluginLogs()}`);
    }
    return result.stdout.trim();
  }

  pluginLogs(tail = 3000): string {
    return [...this.plugins].map(([driver, plugin]) => `--- ${this.hostname} plugin ${driver}:\n${plugin.stderr().slice(-tail)}`).join("\n");
  }

  async stopPlugins(): Promise<void> {
    for (const plugin of this.plugins.values()) await stopPlugin(plugin);
  }

  /** Stops plugins, engine and namespaces; storage mounted into the node must be released first. */
  async destroy(): Promise<void> {
    await this.stopPlugins();
    await this.engine?.destroy();
    await this.ns.stop();
    await rm(this.workDir, { recursive: true, force: true });
  }
}

/** Polls `probe` until it returns a value other than undefined; throws `what` (and the last state) on timeout. */
export async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000, describe?: () => Promise<string>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${describe ? `\n${await describe()}` : ""}`);
    await Bun.sleep(250);
  }
}
