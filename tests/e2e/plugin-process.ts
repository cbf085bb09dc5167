import type { Subprocess } from "bun";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { EngineClient } from "../support/engine-client.ts";

/** The compiled binary under test (built by `npm run build` before the suite). */
export const BINARY = join(import.meta.dir, "../../dist/docker-quobyte-plugin");

export interface PluginProcess {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  socketPath: string;
  /** Everything the process wrote to stderr so far (its log). */
  stderr(): string;
}

type Spawner = (argv: string[]) => Subprocess<"ignore", "pipe", "pipe">;

const defaultSpawner: Spawner = (argv) => Bun.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });

/**
 * Starts `serve` and waits until its socket answers. `spawn` lets the e2e suite start it
 * inside the test engine's mount namespace.
 */
export async function startPlugin(
  args: string[],
  socketPath: string,
  spawn: Spawner = defaultSpawner,
): Promise<PluginProcess> {
  const proc = spawn([BINARY, "serve", ...args]);
  let log = "";
  void (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of proc.stderr) log += decoder.decode(chunk);
  })();
  const deadline = Date.now() + 15_000;
  while (!(await answers(socketPath))) {
    if (proc.exitCode !== null) throw new Error(`serve exited with ${proc.exitCode}: ${log}`);
    if (Date.now() > deadline) {
      proc.kill("SIGKILL");
      throw new Error(`serve did not open ${socketPath} within 15 s: ${log}`);
    }
    await Bun.sleep(20);
  }
  return { proc, socketPath, stderr: () => log };
}

/** Stops the plugin by PID with `signal` and waits for it to exit. */
export async function stopPlugin(plugin: PluginProcess, signal: NodeJS.Signals = "SIGTERM"): Promise<number> {
  if (plugin.proc.exitCode === null) plugin.proc.kill(signal);
  return plugin.proc.exited;
}

/** How many mounts the plugin at socketPath counts for volume `name` (its Get's Status). */
export async function mountCountOf(socketPath: string, name: string): Promise<number> {
  const client = new EngineClient(socketPath);
  try {
    const reply = (await client.call("VolumeDriver.Get", { Name: name })).json as { Volume: { Status: { mounts: number } } };
    return reply.Volume.Status.mounts;
  } finally {
    client.close();
  }
}

async function answers(socketPath: string): Promise<boolean> {
  if (!existsSync(socketPath)) return false;
  try {
    const res = await fetch("http://plugin/Plugin.Activate", { method: "POST", unix: socketPath });
    return res.status === 200;
  } catch {
    return false;
  }
}

/** Runs the binary to completion and collects its output. */
export async function runBinary(args: string[], env?: Record<string, string | undefined>): Promise<{ code: number; stdout: string; stderr: string }> {
  const proc = Bun.spawn([BINARY, ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe", ...(env ? { env } : {}) });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code, stdout, stderr };
}
