import { defineCommand } from "citty";
import { unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createMountMonitor } from "../backends/index.ts";
import { CONTROL_DIR, PosixBackend } from "../backends/posix/posix-backend.ts";
import type { ServeConfig } from "../config.ts";
import { ensureQuobyteMount } from "../quobyte/host-mount.ts";
import { assertKnownArgs, backendArgs, commonArgs, configFromArgs } from "./args.ts";

const args = {
  ...backendArgs,
  "mount-command": {
    type: "string",
    description: "quobyte: program that mounts the namespace (default mount.quobyte), run as <program> <options> <registry>/ <path>",
    valueHint: "PROGRAM",
  },
  "mount-timeout": { type: "string", description: "Seconds to wait for the mount to become live (default 60)", valueHint: "SECONDS" },
  ...commonArgs,
} as const;

export default defineCommand({
  meta: {
    name: "mount-all",
    description: "Establish and verify the host's single storage mount (quobyte: mount.quobyte once; posix: a writable root)",
  },
  args,
  async run({ args: parsed, rawArgs }) {
    assertKnownArgs(rawArgs, args, parsed);
    const config = configFromArgs(parsed, { api: false });
    if (config.backend === "quobyte") {
      const timeoutSeconds = parsed["mount-timeout"] === undefined ? 60 : Number(parsed["mount-timeout"]);
      const outcome = await ensureQuobyteMount({
        path: config.path,
        registry: config.quobyte?.registry ?? "",
        options: config.quobyte?.mountOptions ?? [],
        mountCommand: parsed["mount-command"] ?? "mount.quobyte",
        timeoutMs: (timeoutSeconds > 0 ? timeoutSeconds : 60) * 1000,
        progress: (line) => process.stderr.write(`${line}\n`),
      });
      process.stdout.write(`${config.path} is ${outcome === "mounted" ? "now" : "already"} a live Quobyte mount\n`);
      return;
    }
    if (config.mountCheck !== "none") {
      // The check serve applies before every Create and Mount: passing here means serve will too.
      const health = await createMountMonitor(config).check();
      if (health.state === "not-mounted") {
        // mount-all does not know how to mount a posix root: say who must.
        throw new Error(`--mount-check ${config.mountCheck}: nothing is mounted at ${config.path}; mount the shared filesystem there first (fstab or a .mount unit), or pass --mount-check none if it is meant to be a local directory`);
      }
      if (health.state !== "live") throw new Error(`--mount-check ${config.mountCheck}: ${health.detail}`);
    }
    await verifyPosixRoot(config);
    process.stdout.write(`posix volume root ${config.path} is ready${config.mountCheck === "none" ? "" : ` (a live mount: --mount-check ${config.mountCheck})`}\n`);
  },
});

/** The root exists, is a real directory, and takes writes (read-only or full fails here, at boot). */
async function verifyPosixRoot(config: ServeConfig): Promise<void> {
  const backend = new PosixBackend({ root: config.path, scope: config.scope });
  await backend.init();
  try {
    const probe = join(backend.rootPath, CONTROL_DIR, `.probe-${process.pid}`);
    await writeFile(probe, "ok\n");
    await unlink(probe);
  } finally {
    await backend.close();
  }
}
