import { defineCommand } from "citty";
import { chmod, copyFile, mkdir, rename } from "node:fs/promises";
import { dirname, isAbsolute, join } from "node:path";
import { DEFAULTS, defaultSocketPath, UsageError } from "../config.ts";
import { loadEnvironment } from "../env-file.ts";
import { writeFileAtomic } from "../system/atomic-file.ts";
import { renderServiceUnit, renderSocketUnit, SERVICE_NAME, SOCKET_NAME } from "../system/systemd-units.ts";
import { assertKnownArgs } from "./args.ts";

const BINARY_PATH = "/usr/local/bin/docker-quobyte-plugin";
const UNIT_DIR = "/etc/systemd/system";

const args = {
  prefix: {
    type: "string",
    description: "Stage every file under this directory (like DESTDIR); units still name the final paths",
    valueHint: "DIR",
  },
  backend: {
    type: "string",
    description: "Backend the unit serves: quobyte (runs mount-all first) or posix; default quobyte when an API URL is configured",
    valueHint: "posix|quobyte",
  },
  "env-file": { type: "string", description: "Env file the unit reads", valueHint: DEFAULTS.envFile },
  "dry-run": { type: "boolean", description: "Print what would be written, write nothing" },
} as const;

export default defineCommand({
  meta: { name: "install", description: "Install this binary and its systemd unit (enable it with systemctl afterwards)" },
  args,
  async run({ args: parsed, rawArgs }) {
    assertKnownArgs(rawArgs, args, parsed);
    const prefix = parsed.prefix ?? "/";
    if (!isAbsolute(prefix)) throw new UsageError(`--prefix ${prefix} must be an absolute path`);
    const envFile = parsed["env-file"] ?? DEFAULTS.envFile;
    const env = loadEnvironment({ envFile: parsed["env-file"] }, process.env);
    const backend = parsed.backend ?? (env.QUOBYTE_API_URL ? "quobyte" : "posix");
    if (backend !== "posix" && backend !== "quobyte") throw new UsageError(`--backend ${backend} is not one of: posix, quobyte`);

    const unit = renderServiceUnit({ binary: BINARY_PATH, backend, envFile });
    const socketUnit = renderSocketUnit({
      socketPath: defaultSocketPath(),
      group: env.SOCKET_GROUP || "root",
    });
    const binaryTarget = join(prefix, BINARY_PATH);
    const unitTarget = join(prefix, UNIT_DIR, SERVICE_NAME);
    const socketTarget = join(prefix, UNIT_DIR, SOCKET_NAME);
    if (parsed["dry-run"]) {
      process.stdout.write(
        `would copy ${process.execPath} to ${binaryTarget} (0755)\nwould write ${unitTarget}:\n${unit}\nwould write ${socketTarget}:\n${socketUnit}`,
      );
      return;
    }
    await mkdir(dirname(binaryTarget), { recursive: true, mode: 0o755 });
    // Copy beside the target, then rename: a running plugin keeps its old binary intact.
    const staging = `${binaryTarget}.new-${process.pid}`;
    await copyFile(process.execPath, staging);
    await chmod(staging, 0o755);
    await rename(staging, binaryTarget);
    await mkdir(dirname(unitTarget), { recursive: true, mode: 0o755 });
    await writeFileAtomic(unitTarget, unit, 0o644);
    await writeFileAtomic(socketTarget, socketUnit, 0o644);
    process.stdout.write(
      `installed ${binaryTarget}\nwrote ${unitTarget}\nwrote ${socketTarget}\nnext: systemctl daemon-reload && systemctl enable --now ${SOCKET_NAME} ${SERVICE_NAME}\n`,
    );
  },
});
