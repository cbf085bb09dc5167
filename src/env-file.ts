import { existsSync, readFileSync } from "node:fs";
import { DEFAULTS, UsageError } from "./config.ts";

export type Env = Record<string, string | undefined>;

/**
 * Parses a systemd-style environment file (the original Go plugin's
 * /etc/quobyte/docker-quobyte.env): KEY=VALUE lines, `#` comments, optional `export `,
 * optional single or double quotes around the value.
 */
export function parseEnvFile(text: string): Env {
  const env: Env = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const match = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!match?.[1]) continue;
    let value = match[2] ?? "";
    if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.at(-1) === value[0]) value = value.slice(1, -1);
    env[match[1]] = value;
  }
  return env;
}

/**
 * The environment a command runs with: the env file (explicit `--env-file`, else the
 * default one when it exists) under the process environment, and the password from
 * `--password-file` over both. The password never comes from a flag's value: that
 * would put it in argv, visible to every user in `ps`.
 */
export function loadEnvironment(options: { envFile?: string; passwordFile?: string }, processEnv: Env): Env {
  let fileEnv: Env = {};
  const envFile = options.envFile ?? (existsSync(DEFAULTS.envFile) ? DEFAULTS.envFile : undefined);
  if (envFile !== undefined) {
    try {
      fileEnv = parseEnvFile(readFileSync(envFile, "utf8"));
    } catch (error) {
      throw new UsageError(`cannot read env file ${envFile}: ${(error as Error).message}`);
    }
  }
  const env: Env = { ...fileEnv, ...processEnv };
  if (options.passwordFile !== undefined) {
    try {
      env.QUOBYTE_API_PASSWORD = readFileSync(options.passwordFile, "utf8").replace(/\r?\n$/, "");
    } catch (error) {
      throw new UsageError(`cannot read password file ${options.passwordFile}: ${(error as Error).message}`);
    }
  }
  return env;
}
