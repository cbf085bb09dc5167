import { defineCommand } from "citty";
import { chmod, copyFile, mkdir, rename } from "node:fs/promises";
import { dirname, isAbsolute, join } from "node:path";
import { resolveServeConfig, UsageError } from "../config.ts";
import { loadEnvironment } from "../env-file.ts";
import { requireSocketGroup } from "../system/accounts.ts";
import { writeFileAtomic } from "../system/atomic-file.ts";
import { renderServiceUnit, renderSocketUnit, SERVICE_NAME, SOCKET_NAME } from "../system/systemd-units.ts";
import { assertKnownArgs, backendArgs, claimArgs, nameArg } from "./args.ts";

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
  "env-file": { type: "string", description: "Env file serve reads (absolute path; default /etc/quobyte/docker-quobyte.env when it exists)", valueHint: "FILE" },
  path: backendArgs.path,
  "mount-check": backendArgs["mount-check"],
  scope: backendArgs.scope,
  "state-dir": backendArgs["state-dir"],
  ...nameArg,
  ...claimArgs,
  group: { type: "string", description: "Group allowed to use the socket: SocketGroup= of the socket unit (env SOCKET_GROUP; default root)", valueHint: "GROUP" },
  "dry-run": { type: "boolean", description: "Print what would be written, write nothing" },
} as const;

export default defineCommand({
  meta: { name: "install", description: "Install this binary and its systemd units (enable them with systemctl afterwards)" },
  args,
  async run({ args: parsed, rawArgs }) {
    assertKnownArgs(rawArgs, args, parsed);
    const prefix = parsed.prefix ?? "/";
    if (!isAbsolute(prefix)) throw new UsageError(`--prefix ${prefix} must be an absolute path, such as ${join(process.cwd(), prefix)}`);
    const givenEnvFile = parsed["env-file"];
    // systemd resolves nothing against a working directory: the unit would read no settings.
    if (givenEnvFile !== undefined && !isAbsolute(givenEnvFile)) {
      throw new UsageError(`--env-file ${givenEnvFile} must be an absolute path (the unit runs from /), such as ${join(process.cwd(), givenEnvFile)}`);
    }
    for (const flag of ["path", "state-dir"] as const) {
      const value = parsed[flag];
      if (value !== undefined && !isAbsolute(value)) throw new UsageError(`--${flag} ${value} must be an absolute path, such as ${join(process.cwd(), value)}`);
    }
    // The same checks as serve, on the same inputs: a unit that cannot start is never written.
    // The unit gets the env file and the flags below, never this shell's variables (an
    // exported QUOBYTE_API_URL would make a quobyte unit that fails at start); only
    // SOCKET_GROUP is carried over, as --group.
    const shellGroup = process.env.SOCKET_GROUP || undefined;
    const { env: fileEnv, envFile } = loadEnvironment({ envFile: givenEnvFile }, {});
    const env = shellGroup === undefined ? fileEnv : { ...fileEnv, SOCKET_GROUP: shellGroup };
    const config = resolveServeConfig(parsed, env, { api: false, envFile });
    if (config.backend !== "posix" && config.backend !== "quobyte") throw new UsageError(`--backend ${String(config.backend)} is not one of: posix, quobyte`);
    // A staged image is installed elsewhere; only a live install can check the group here.
    if (prefix === "/") await requireSocketGroup(config.socketGroup);

    // serve's flags the unit carries: the storage, the socket and the state, as tested by hand.
    const passed: Record<string, string | undefined> = {
      "--env-file": envFile,
      "--path": parsed.path === undefined ? undefined : config.path,
      "--mount-check": parsed["mount-check"],
      "--scope": parsed.scope,
      "--state-dir": parsed["state-dir"] === undefined ? undefined : config.stateDir,
      "--name": parsed.name,
      "--group": parsed.group ?? shellGroup,
      "--host-id": parsed["host-id"],
      "--lease-timeout": parsed["lease-timeout"],
    };
    const serveFlags = Object.entries(passed).filter((entry): entry is [string, string] => entry[1] !== undefined);
    const unit = renderServiceUnit({ binary: BINARY_PATH, backend: config.backend, serveFlags });
    const socketUnit = renderSocketUnit({ socketPath: config.socketPath, group: config.socketGroup });
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
      `installed ${binaryTarget}\nwrote ${unitTarget}\nwrote ${socketTarget} (optional, slower: see README)\nnext: systemctl daemon-reload && systemctl enable --now ${SERVICE_NAME}\n`,
    );
  },
});
