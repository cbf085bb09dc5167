import type { ArgsDef } from "citty";
import { UsageError } from "../config.ts";
import { LOG_FORMATS, LOG_LEVELS } from "../logging.ts";

/** Flags every long-running or state-touching command shares. */
export const commonArgs = {
  "log-level": {
    type: "string",
    description: `Log level: ${LOG_LEVELS.join(", ")}`,
    valueHint: "info",
  },
  "log-format": {
    type: "string",
    description: `Log format: ${LOG_FORMATS.join(", ")} (json: one object per line, for journald)`,
    valueHint: "pretty",
  },
} as const satisfies ArgsDef;

export const backendArgs = {
  backend: { type: "string", description: "Storage backend: posix", valueHint: "posix" },
  path: {
    type: "string",
    description: "posix: directory holding one subdirectory per volume (default /var/lib/docker-quobyte-plugin/volumes)",
    valueHint: "DIR",
  },
  scope: {
    type: "string",
    description: "Capabilities scope: local, or global when the volume root is shared by all hosts",
    valueHint: "local|global",
  },
} as const satisfies ArgsDef;

/**
 * citty accepts any flag silently; a typo such as `--sate-dir` must not quietly fall
 * back to a default on a production host.
 */
export function assertKnownArgs(rawArgs: readonly string[], defs: ArgsDef): void {
  const known = new Set<string>(["help", "h"]);
  for (const [name, def] of Object.entries(defs)) {
    known.add(name);
    const aliases = "alias" in def ? (def.alias ?? []) : [];
    for (const alias of Array.isArray(aliases) ? aliases : [aliases]) known.add(alias);
    if (def.type === "boolean") known.add(`no-${name}`);
  }
  for (const arg of rawArgs) {
    if (arg === "--") break;
    if (!arg.startsWith("-") || arg === "-") continue;
    const name = arg.replace(/^--?/, "").split("=")[0] ?? "";
    if (!known.has(name)) throw new UsageError(`unknown option ${arg.split("=")[0]}`);
  }
}
