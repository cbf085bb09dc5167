import { resolve } from "node:path";
import type { Scope } from "./core/types.ts";
import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevelName } from "./logging.ts";

export const BACKENDS = ["posix"] as const;
export type BackendKind = (typeof BACKENDS)[number];

export const DEFAULTS = {
  name: "quobyte",
  stateDir: "/var/lib/docker-quobyte-plugin",
  posixPath: "/var/lib/docker-quobyte-plugin/volumes",
  socketDir: "/run/docker/plugins",
  timeoutSeconds: 30,
  idleTimeoutSeconds: 60,
} as const;

/** A wrong flag or environment value: shown with the command's usage, exit code 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

export interface ServeConfig {
  backend: BackendKind;
  /** The posix volume root. */
  path: string;
  stateDir: string;
  driverName: string;
  socketPath: string;
  /** Socket group as given (name or id); resolved to a gid at start. */
  socketGroup: string;
  scope: Scope | undefined;
  logLevel: LogLevelName;
  logFormat: LogFormat;
  timeoutMs: number;
}

/** Raw command-line values (citty's parsed args), all optional strings. */
export interface ServeArgs {
  backend?: string;
  path?: string;
  "state-dir"?: string;
  name?: string;
  socket?: string;
  group?: string;
  scope?: string;
  "log-level"?: string;
  "log-format"?: string;
  timeout?: string;
}

/** Flags win over environment variables, which win over defaults. Pure: no I/O. */
export function resolveServeConfig(args: ServeArgs, env: Record<string, string | undefined>): ServeConfig {
  const backend = oneOf("--backend", args.backend ?? "posix", BACKENDS);
  const driverName = args.name ?? DEFAULTS.name;
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(driverName)) {
    throw new UsageError(`--name ${JSON.stringify(driverName)} must be letters, digits, "_", "." or "-" (at most 64)`);
  }
  const scope = args.scope === undefined ? undefined : oneOf("--scope", args.scope, ["local", "global"] as const);
  const timeoutSeconds = args.timeout === undefined ? DEFAULTS.timeoutSeconds : Number(args.timeout);
  if (!(timeoutSeconds > 0 && timeoutSeconds <= 110)) {
    // The engine waits 60 s (120 s for Create and Mount); answering later is useless.
    throw new UsageError(`--timeout ${JSON.stringify(args.timeout)} must be a number of seconds above 0 and at most 110`);
  }
  return {
    backend,
    path: absolute("--path", args.path ?? DEFAULTS.posixPath),
    stateDir: absolute("--state-dir", args["state-dir"] ?? DEFAULTS.stateDir),
    driverName,
    socketPath: absolute("--socket", args.socket ?? `${DEFAULTS.socketDir}/${driverName}.sock`),
    socketGroup: args.group ?? env.SOCKET_GROUP ?? "root",
    scope,
    logLevel: oneOf("--log-level", args["log-level"] ?? "info", LOG_LEVELS),
    logFormat: oneOf("--log-format", args["log-format"] ?? "pretty", LOG_FORMATS),
    timeoutMs: Math.round(timeoutSeconds * 1000),
  };
}

function oneOf<T extends string>(flag: string, value: string, allowed: readonly T[]): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new UsageError(`${flag} ${JSON.stringify(value)} is not one of: ${allowed.join(", ")}`);
}

function absolute(flag: string, value: string): string {
  if (value.length === 0) throw new UsageError(`${flag} must not be empty`);
  return resolve(value);
}
