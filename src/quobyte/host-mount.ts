import { mkdir, readdir } from "node:fs/promises";
import { MountMonitor } from "../system/mount-health.ts";
import { isQuobyteMount, mountAt } from "../system/mountinfo.ts";

export interface HostMountOptions {
  path: string;
  registry: string;
  /** mount.quobyte arguments before the registry (e.g. `-o user_xattr`). */
  options: string[];
  /** The program to run: `mount.quobyte` unless overridden. */
  mountCommand: string;
  timeoutMs: number;
  /** Progress lines for the operator. */
  progress: (line: string) => void;
}

/** A mount failure with its explanation; mount-all exits non-zero with it. */
export class HostMountError extends Error {
  override readonly name = "HostMountError";
}

/**
 * Makes `path` a live Quobyte client mount: nothing to do when it is one; a dead one
 * (the client died: ENOTCONN) is lazily unmounted first; a non-empty, unmounted mount
 * point is refused (mounting over it would hide data, and the data was probably written
 * there while the client was down). Programs run as argv arrays, never through a shell.
 */
export async function ensureQuobyteMount(options: HostMountOptions): Promise<"already-mounted" | "mounted"> {
  const { path } = options;
  const monitor = new MountMonitor(path, "quobyte", 5000);
  const before = await monitor.check();
  if (before.state === "live") return "already-mounted";

  const entry = await mountAt(path);
  if (entry && !isQuobyteMount(entry)) {
    throw new HostMountError(`${path} already holds a ${entry.fsType} mount of ${entry.source}; unmount it or choose another --path`);
  }
  if (entry) {
    options.progress(`${path}: the Quobyte mount is ${before.state} (${before.detail}); unmounting it lazily`);
    const umount = await run(["umount", "-l", path]);
    if (umount.code !== 0) throw new HostMountError(`umount -l ${path} failed: ${umount.stderr.trim()}`);
  }

  await mkdir(path, { recursive: true, mode: 0o755 });
  const stray = await readdir(path);
  if (stray.length > 0) {
    throw new HostMountError(
      `${path} is not mounted but holds ${stray.length} entries (${stray.slice(0, 3).join(", ")}...); refusing to mount over them. Move them away first: they were probably written while the client was down`,
    );
  }

  const argv = [options.mountCommand, ...options.options, `${options.registry}/`, path];
  options.progress(`mounting: ${argv.join(" ")}`);
  let child;
  try {
    child = Bun.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  } catch (error) {
    throw new HostMountError(`cannot run ${options.mountCommand}: ${(error as Error).message}`);
  }
  const output = collect(child);
  const deadline = Date.now() + options.timeoutMs;
  let lastReport = Date.now();
  for (;;) {
    const health = await new MountMonitor(path, "quobyte", 2000).check();
    if (health.state === "live") return "mounted";
    // mount.quobyte usually daemonizes: its exit status says whether mounting started.
    if (child.exitCode !== null && child.exitCode !== 0) {
      throw new HostMountError(`${options.mountCommand} exited with ${child.exitCode}: ${(await output).trim()}`);
    }
    if (Date.now() > deadline) {
      if (child.exitCode === null) child.kill("SIGTERM");
      throw new HostMountError(`${path} did not become a live Quobyte mount within ${options.timeoutMs} ms (${health.detail})`);
    }
    if (Date.now() - lastReport >= 1000) {
      options.progress(`waiting for ${path} (${health.state})...`);
      lastReport = Date.now();
    }
    await Bun.sleep(100);
  }
}

function collect(child: { stdout: ReadableStream<Uint8Array>; stderr: ReadableStream<Uint8Array> }): Promise<string> {
  return Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text()]).then(([out, err]) => `${out}${err}`);
}

async function run(argv: string[]): Promise<{ code: number; stderr: string }> {
  const child = Bun.spawn(argv, { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const [stderr, code] = await Promise.all([new Response(child.stderr).text(), child.exited]);
  return { code, stderr };
}
