import type { ArgsDef } from "citty";
import { resolveServeConfig, type ServeArgs, type ServeConfig, UsageError } from "../config.ts";
import { loadEnvironment } from "../env-file.ts";
import { LOG_FORMATS, LOG_LEVELS } from "../logging.ts";
import { requireDirectoryOrAbsent, requirePemFile } from "./file-checks.ts";

/** Flags every long-running or state-touching command shares. */
export const commonArgs = {
  "log-level": { type: "string", description: `Log level: ${LOG_LEVELS.join(", ")}`, valueHint: "info" },
  "log-format": {
    type: "string",
    description: `Log format: ${LOG_FORMATS.join(", ")} (json: one object per line, for journald)`,
    valueHint: "pretty",
  },
} as const satisfies ArgsDef;

/** The driver name, which also names the default socket; serve and status share it. */
export const nameArg = {
  name: { type: "string", description: "Driver name: the socket is /run/docker/plugins/<name>.sock", valueHint: "quobyte" },
} as const satisfies ArgsDef;

/** How this host takes part in mount claims on shared storage; serve and install share them. */
export const claimArgs = {
  "host-id": {
    type: "string",
    description: "This host's name in mount claims on shared storage (default: the hostname); unique per host",
    valueHint: "ID",
  },
  "lease-timeout": {
    type: "string",
    description: "With --scope global: seconds after which a silent host's mounts stop blocking Remove (default 60)",
    valueHint: "SECONDS",
  },
} as const satisfies ArgsDef;

/** Where volumes live; shared by serve and mount-all. */
export const backendArgs = {
  backend: {
    type: "string",
    description: "Storage backend: posix, or quobyte (the default when an API URL is configured)",
    valueHint: "posix|quobyte",
  },
  path: {
    type: "string",
    description:
      "posix: directory holding one subdirectory per volume (default /var/lib/docker-quobyte-plugin/volumes); quobyte: the Quobyte mount (env QUOBYTE_MOUNT_PATH, default /run/docker/quobyte/mnt)",
    valueHint: "DIR",
  },
  "state-dir": {
    type: "string",
    description: "Directory for this host's plugin state (default /var/lib/docker-quobyte-plugin)",
    valueHint: "DIR",
  },
  scope: {
    type: "string",
    description: "Capabilities scope: local, or global when every host sees the same volumes (quobyte: global)",
    valueHint: "local|global",
  },
  "mount-check": {
    type: "string",
    description: "What makes the storage mount live: quobyte (a fuse.quobyte mount; quobyte default), mountpoint (any mount), none (a directory; posix default)",
    valueHint: "quobyte|mountpoint|none",
  },
  "env-file": {
    type: "string",
    description: "Environment file with QUOBYTE_* settings (default /etc/quobyte/docker-quobyte.env when it exists)",
    valueHint: "FILE",
  },
  api: { type: "string", description: "quobyte: management API URL (env QUOBYTE_API_URL), http:// or https://", valueHint: "URL" },
  user: { type: "string", description: "quobyte: API user (env QUOBYTE_API_USER, default admin)", valueHint: "USER" },
  "password-file": {
    type: "string",
    description: "quobyte: file holding the API password (else env QUOBYTE_API_PASSWORD; never a flag)",
    valueHint: "FILE",
  },
  "api-ca": { type: "string", description: "quobyte: PEM file of the CA that signed an https API's certificate", valueHint: "FILE" },
  "api-timeout": { type: "string", description: "quobyte: deadline of one API call in seconds (default 10)", valueHint: "SECONDS" },
  registry: { type: "string", description: "quobyte: registry for mount-all (env QUOBYTE_REGISTRY)", valueHint: "HOST[:PORT]" },
  "tenant-id": { type: "string", description: "quobyte: tenant name or UUID (env QUOBYTE_TENANT_ID)", valueHint: "TENANT" },
  "configuration-name": {
    type: "string",
    description: "quobyte: volume configuration of new volumes (env QUOBYTE_VOLUME_CONFIG_NAME, default BASE)",
    valueHint: "NAME",
  },
  options: {
    type: "string",
    description: "quobyte: mount.quobyte options for mount-all (env QUOBYTE_MOUNT_OPTIONS, default -o user_xattr)",
    valueHint: "OPTIONS",
  },
} as const satisfies ArgsDef;

/**
 * citty accepts any flag silently; a typo such as `--sate-dir` must not quietly fall
 * back to a default on a production host, and `--password` must not exist at all.
 */
export function assertKnownArgs(rawArgs: readonly string[], defs: ArgsDef, parsed: Record<string, unknown> = {}): void {
  const known = new Set<string>(["help", "h"]);
  for (const [name, def] of Object.entries(defs)) {
    known.add(name);
    const aliases = "alias" in def ? (def.alias ?? []) : [];
    for (const alias of Array.isArray(aliases) ? aliases : [aliases]) known.add(alias);
    if (def.type === "boolean") known.add(`no-${name}`);
  }
  for (let i = 0; i < rawArgs.length; i++) {
    const arg = rawArgs[i] ?? "";
    if (arg === "--") break;
    if (!arg.startsWith("-") || arg === "-") {
      // citty drops extra words silently; `serve /data` must not serve the default root.
      throw new UsageError(`unexpected argument ${JSON.stringify(arg)}: this command takes only --flags (a value with spaces needs quotes)`);
    }
    const name = arg.replace(/^--?/, "").split("=")[0] ?? "";
    // A string flag without "=" takes the next word as its value.
    if (!arg.includes("=") && defs[name]?.type === "string") i++;
    if (name === "password") {
      throw new UsageError("there is no --password flag: argv is visible to every user; use --password-file or QUOBYTE_API_PASSWORD");
    }
    if (!known.has(name)) throw new UsageError(`unknown option ${arg.split("=")[0]}`);
  }
  // `--options -o x` hands citty a flag where a value belongs; it then reads `true`.
  for (const [name, def] of Object.entries(defs)) {
    if (def.type === "string" && parsed[name] !== undefined && typeof parsed[name] !== "string") {
      throw new UsageError(`--${name} needs a value; for a value starting with "-" write --${name}="..."`);
    }
  }
}

/**
 * Parsed flags + env file + process environment -> configuration, with every named file
 * checked before anything is created: bad input changes nothing on disk.
 */
export function configFromArgs(
  parsed: ServeArgs & { "env-file"?: string; "password-file"?: string },
  use: { api: boolean } = { api: true },
): ServeConfig {
  const { env, envFile } = loadEnvironment({ envFile: parsed["env-file"], passwordFile: parsed["password-file"] }, process.env);
  const config = resolveServeConfig(parsed, env, { ...use, envFile });
  requireDirectoryOrAbsent("--path", config.path);
  requireDirectoryOrAbsent("--state-dir", config.stateDir);
  if (config.quobyte?.apiCaFile !== undefined) requirePemFile("--api-ca", config.quobyte.apiCaFile, "certificate");
  if (config.listen?.tlsCert !== undefined) requirePemFile("--tls-cert", config.listen.tlsCert, "certificate");
  if (config.listen?.tlsKey !== undefined) requirePemFile("--tls-key", config.listen.tlsKey, "private key");
  if (config.listen?.tlsCa !== undefined) requirePemFile("--tls-ca", config.listen.tlsCa, "certificate");
  return config;
}
