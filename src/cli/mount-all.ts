import { defineCommand } from "citty";
import { unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { CONTROL_DIR } from "../backends/posix/posix-backend.ts";
import { createBackend } from "../backends/index.ts";
import { resolveServeConfig } from "../config.ts";
import { assertKnownArgs, backendArgs, commonArgs } from "./args.ts";

const args = { ...backendArgs, ...commonArgs } as const;

export default defineCommand({
  meta: {
    name: "mount-all",
    description: "Establish and verify the host's single storage mount (posix: the volume root is a writable directory)",
  },
  args,
  async run({ args: parsed, rawArgs }) {
    assertKnownArgs(rawArgs, args);
    const config = resolveServeConfig(parsed, process.env);
    const backend = createBackend(config);
    await backend.init();
    try {
      // Prove the root takes writes: a read-only or full filesystem fails here, at boot,
      // instead of at the first `docker volume create`.
      const probe = join(config.path, CONTROL_DIR, `.probe-${process.pid}`);
      await writeFile(probe, "ok\n");
      await unlink(probe);
    } finally {
      await backend.close();
    }
    process.stdout.write(`${backend.kind} volume root ${config.path} is ready\n`);
  },
});
