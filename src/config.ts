import { resolve } from "node:path";
import { isValidHostId } from "./core/claims.ts";
import type { Scope } from "./core/types.ts";
import { checkListenFlags, ListenError } from "./protocol/tcp-listener.ts";
import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevelName } from "./logging.ts";
import { redactUrl } from "./quobyte/rpc-client.ts";
import { hostIdentity } from "./system/atomic-file.ts";
import { MOUNT_CHECK_MODES, type MountCheckMode } from "./system/mount-health.ts";

export const BACKENDS = ["posix", "quobyte"] as const;
export type BackendKind = (typeof BACKENDS)[number];

export const DEFAULTS = {
  name: "quobyte",
  stateDir: "/var/lib/docker-quobyte-plugin",
  posixPath: "/var/lib/docker-quobyte-plugin/volumes",
  quobyteMountPath: "/run/docker/quobyte/mnt",
  socketDir: "/run/docker/plugins",
  envFile: "/etc/quobyte/docker-quobyte.env",
  apiUser: "admin",
  configurationName: "BASE",
  mountOptions: "-o user_xattr",
  registry: "localhost:7861",
  timeoutSeconds: 30,
  apiTimeoutSeconds: 10,
  createWaitSeconds: 20,
  cacheTtlSeconds: 10,
  idleTimeoutSeconds: 60,
  leaseTimeoutSeconds: 60,
} as const;

/** Where the engine looks for a plugin's socket: /run/docker/plugins/<name>.sock. */
export function defaultSocketPath(driverName: string = DEFAULTS.name): string {
  return `${DEFAULTS.socketDir}/${driverName}.sock`;
}

/** A wrong flag or environment value: shown with the command's usage, exit code 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** Settings of the quobyte backend. `password` is a secret: never log or print it. */
export interface QuobyteConfig {
  apiUrl: string;
  user: string;
  password: string;
  /** File with the PEM CA of an https API. */
  apiCaFile: string | undefined;
  apiTimeoutMs: number;
  registry: string;
  tenant: string;
  configurationName: string;
  /** Extra arguments for mount.quobyte (QUOBYTE_MOUNT_OPTIONS split on blanks). */
  mountOptions: string[];
  createWaitMs: number;
  listAll: boolean;
  /** A volume the API confirmed this recently is served from the cache (ms). */
  cacheTtlMs: number;
}

export interface ServeConfig {
  backend: BackendKind;
  /** posix: the volume root; quobyte: where the Quobyte namespace is mounted. */
  path: string;
  stateDir: string;
  driverName: string;
  socketPath: string;
  /** Socket group as given (name or id); resolved to a gid at start. */
  socketGroup: string;
  scope: Scope | undefined;
  /** This host's name in mount claims on shared storage (`--host-id`, default the hostname). */
  hostId: string;
  /** A host whose claims' heartbeat stands still this long no longer pins volumes (ms). */
  leaseTimeoutMs: number;
  mountCheck: MountCheckMode;
  logLevel: LogLevelName;
  logFormat: LogFormat;
  timeoutMs: number;
  quobyte: QuobyteConfig | undefined;
  /** Serve on TCP instead of the Unix socket (`--listen`), with optional TLS files. */
  listen: { address: string; tlsCert?: string; tlsKey?: string; tlsCa?: string } | undefined;
}

/** Raw command-line values (citty's parsed args). */
export interface ServeArgs {
  backend?: string;
  path?: string;
  "state-dir"?: string;
  name?: string;
  socket?: string;
  group?: string;
  scope?: string;
  "host-id"?: string;
  "lease-timeout"?: string;
  "mount-check"?: string;
  "log-level"?: string;
  "log-format"?: string;
  timeout?: string;
  api?: string;
  user?: string;
  registry?: string;
  "tenant-id"?: string;
  "configuration-name"?: string;
  options?: string;
  "api-ca"?: string;
  "api-timeout"?: string;
  "create-wait"?: string;
  "list-all"?: boolean;
  "cache-ttl"?: string;
  listen?: string;
  "tls-cert"?: string;
  "tls-key"?: string;
  "tls-ca"?: string;
}

type Env = Record<string, string | undefined>;

export interface ResolveOptions {
  /** false for mount-all, which only mounts and never calls the API. */
  api: boolean;
  /** The env file that was read, if any: it decides whether the backend may be guessed. */
  envFile?: string;
}

/**
 * An API URL means quobyte. Without one, posix is only assumed when no env file was read:
 * an env file is there for quobyte, and one whose URL line is broken must not quietly put
 * every volume on the host's local disk.
 */
function guessBackend(apiUrl: string | undefined, envFile: string | undefined): BackendKind {
  if (apiUrl) return "quobyte";
  if (envFile !== undefined) {
    throw new UsageError(`env file ${envFile} sets no QUOBYTE_API_URL, so the backend is unclear: add QUOBYTE_API_URL=http://HOST:7860 to it for quobyte, or pass --backend posix`);
  }
  return "posix";
}

/**
 * Flags win over the environment (which includes the env file), which wins over
 * defaults. Pure: reading the env and password files happens before, in the CLI.
 */
export function resolveServeConfig(args: ServeArgs, env: Env, use: ResolveOptions = { api: true }): ServeConfig {
  const apiUrl = nonEmpty(args.api) ?? nonEmpty(env.QUOBYTE_API_URL);
  const backend = oneOf("--backend", args.backend ?? guessBackend(apiUrl, use.envFile), BACKENDS);
  const driverName = args.name ?? DEFAULTS.name;
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(driverName)) {
    throw new UsageError(`--name ${JSON.stringify(driverName)} must be letters, digits, "_", "." or "-" (at most 64)`);
  }
  const scope = args.scope === undefined ? undefined : oneOf("--scope", args.scope, ["local", "global"] as const);
  // The engine waits 60 s (120 s for Create and Mount); answering later is useless.
  const timeoutMs = seconds("--timeout", args.timeout, DEFAULTS.timeoutSeconds, 110);
  const defaultPath = backend === "quobyte" ? (nonEmpty(env.QUOBYTE_MOUNT_PATH) ?? DEFAULTS.quobyteMountPath) : DEFAULTS.posixPath;
  return {
    backend,
    path: absolute("--path", args.path ?? defaultPath),
    stateDir: absolute("--state-dir", args["state-dir"] ?? DEFAULTS.stateDir),
    driverName,
    socketPath: absolute("--socket", args.socket ?? defaultSocketPath(driverName)),
    socketGroup: args.group ?? nonEmpty(env.SOCKET_GROUP) ?? "root",
    scope,
    hostId: resolveHostId(args["host-id"]),
    leaseTimeoutMs: seconds("--lease-timeout", args["lease-timeout"], DEFAULTS.leaseTimeoutSeconds, 3600),
    mountCheck: oneOf("--mount-check", args["mount-check"] ?? (backend === "quobyte" ? "quobyte" : "none"), MOUNT_CHECK_MODES),
    logLevel: oneOf("--log-level", args["log-level"] ?? "info", LOG_LEVELS),
    logFormat: oneOf("--log-format", args["log-format"] ?? "pretty", LOG_FORMATS),
    timeoutMs,
    quobyte: backend === "quobyte" ? resolveQuobyte(args, env, apiUrl, timeoutMs, use.api) : undefined,
    listen: resolveListen(args),
  };
}

/** `needsApi` is false for mount-all, which only mounts and never calls the API. */
function resolveQuobyte(args: ServeArgs, env: Env, apiUrl: string | undefined, timeoutMs: number, needsApi: boolean): QuobyteConfig {
  if (!apiUrl && needsApi) throw new UsageError("the quobyte backend needs the API URL: --api or QUOBYTE_API_URL");
  if (apiUrl && !/^https?:\/\/[^/]/i.test(apiUrl)) {
    throw new UsageError(`API URL ${JSON.stringify(redactUrl(apiUrl))} must start with http:// or https://`);
  }
  const password = env.QUOBYTE_API_PASSWORD ?? "";
  if (!password && needsApi) {
    throw new UsageError(
      `the quobyte backend needs the API password: QUOBYTE_API_PASSWORD in ${DEFAULTS.envFile} (or --env-file), the environment, or --password-file`,
    );
  }
  const tenant = nonEmpty(args["tenant-id"]) ?? nonEmpty(env.QUOBYTE_TENANT_ID) ?? "";
  if (!tenant && needsApi) throw new UsageError("the quobyte backend needs a tenant (name or UUID): --tenant-id or QUOBYTE_TENANT_ID");
  const apiTimeoutMs = seconds("--api-timeout", args["api-timeout"], DEFAULTS.apiTimeoutSeconds, 60);
  const createWaitMs = seconds("--create-wait", args["create-wait"], DEFAULTS.createWaitSeconds, 110);
  if (apiTimeoutMs >= timeoutMs) throw new UsageError("--api-timeout must be shorter than --timeout");
  const options = args.options ?? env.QUOBYTE_MOUNT_OPTIONS ?? DEFAULTS.mountOptions;
  return {
    apiUrl: apiUrl ?? "",
    user: nonEmpty(args.user) ?? nonEmpty(env.QUOBYTE_API_USER) ?? DEFAULTS.apiUser,
    password,
    apiCaFile: args["api-ca"] === undefined ? undefined : absolute("--api-ca", args["api-ca"]),
    apiTimeoutMs,
    registry: nonEmpty(args.registry) ?? nonEmpty(env.QUOBYTE_REGISTRY) ?? DEFAULTS.registry,
    tenant,
    configurationName: nonEmpty(args["configuration-name"]) ?? nonEmpty(env.QUOBYTE_VOLUME_CONFIG_NAME) ?? DEFAULTS.configurationName,
    mountOptions: options.split(/\s+/).filter(Boolean),
    createWaitMs,
    listAll: args["list-all"] === true,
    cacheTtlMs: seconds("--cache-ttl", args["cache-ttl"] ?? nonEmpty(env.QUOBYTE_CACHE_TTL), DEFAULTS.cacheTtlSeconds, 3600),
  };
}

function resolveListen(args: ServeArgs): ServeConfig["listen"] {
  const tlsFiles = { tlsCert: args["tls-cert"], tlsKey: args["tls-key"], tlsCa: args["tls-ca"] };
  if (args.listen === undefined) {
    if (Object.values(tlsFiles).some((file) => file !== undefined)) throw new UsageError("--tls-cert, --tls-key and --tls-ca go with --listen");
    return undefined;
  }
  if (args.socket !== undefined) throw new UsageError("give --listen or --socket, not both");
  try {
    checkListenFlags(args.listen, tlsFiles);
  } catch (error) {
    if (error instanceof ListenError) throw new UsageError(error.message);
    throw error;
  }
  const files = Object.fromEntries(Object.entries(tlsFiles).filter(([, file]) => file !== undefined).map(([key, file]) => [key, absolute(`--${key}`, file ?? "")]));
  return { address: args.listen, ...files };
}

function resolveHostId(value: string | undefined): string {
  if (value === undefined) return hostIdentity();
  if (!isValidHostId(value)) throw new UsageError(`--host-id ${JSON.stringify(value)} must be letters, digits, "_", "." or "-" (at most 64)`);
  return value;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value.trim();
}

function seconds(flag: string, value: string | undefined, fallback: number, max: number): number {
  const parsed = value === undefined ? fallback : Number(value);
  if (!(parsed > 0 && parsed <= max)) {
    throw new UsageError(`${flag} ${JSON.stringify(value)} must be a number of seconds above 0 and at most ${max}`);
  }
  return Math.round(parsed * 1000);
}

function oneOf<T extends string>(flag: string, value: string, allowed: readonly T[]): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new UsageError(`${flag} ${JSON.stringify(value)} is not one of: ${allowed.join(", ")}`);
}

function absolute(flag: string, value: string): string {
  if (value.length === 0) throw new UsageError(`${flag} must not be empty`);
  return resolve(value);
}
