import { existsSync, readFileSync } from "node:fs";
import { DEFAULTS, UsageError } from "./config.ts";
import { closestName } from "./closest-name.ts";
import { fsErrorText } from "./fs-error-text.ts";

export type Env = Record<string, string | undefined>;

/** Every QUOBYTE_* variable the plugin reads; any other is a typo that would be ignored. */
export const KNOWN_QUOBYTE_KEYS = [
  "QUOBYTE_API_URL",
  "QUOBYTE_API_USER",
  "QUOBYTE_API_PASSWORD",
  "QUOBYTE_MOUNT_PATH",
  "QUOBYTE_MOUNT_OPTIONS",
  "QUOBYTE_REGISTRY",
  "QUOBYTE_TENANT_ID",
  "QUOBYTE_VOLUME_CONFIG_NAME",
  "QUOBYTE_CACHE_TTL",
] as const;

/** A line of an env file that systemd would skip (with a journal warning nobody reads). */
export class EnvFileError extends UsageError {}

/** systemd's WHITESPACE: JavaScript's \s also takes \v, \f and Unicode spaces, which systemd keeps. */
const BLANKS = " \t\n\r";
const isBlank = (char: string): boolean => char !== "" && BLANKS.includes(char);

function trimEndBlanks(text: string): string {
  let end = text.length;
  while (end > 0 && isBlank(text[end - 1] ?? "")) end--;
  return text.slice(0, end);
}

function trimBlanks(text: string): string {
  const trimmed = trimEndBlanks(text);
  let start = 0;
  while (start < trimmed.length && isBlank(trimmed[start] ?? "")) start++;
  return trimmed.slice(start);
}

function firstWord(text: string): string {
  return trimBlanks(text).split(/[ \t\n\r]+/)[0] ?? "";
}

type State = "preKey" | "key" | "preValue" | "value" | "valueEscape" | "single" | "double" | "doubleEscape" | "comment" | "commentEscape";

/**
 * Parses an environment file the way systemd's EnvironmentFile= does (env-file.c): `#` and
 * `;` comments, `KEY=VALUE` with blanks around `=` ignored, single quotes literal, double
 * quotes with `\"` `\\` `` \` `` `\$` escapes, a backslash at the end of a line continuing
 * it. Where systemd would log and skip a line (no `=`, an invalid name), this throws with
 * the file and line: a skipped QUOBYTE_API_URL silently turns the plugin into local disk.
 */
export function parseEnvFile(text: string, fileName = "env file"): Env {
  const env: Env = {};
  let state: State = "preKey";
  let key = "";
  let value = "";
  let line = 1;
  let keyLine = 1;
  // Unquoted trailing blanks are dropped, as systemd does; quoted ones are kept.
  let valueKeep = 0;
  // An error shows the first word of a bad line only: the rest may be a password
  // (`QUOBYTE_API_PASSWORD hunter2`), and error text ends up in terminals and journals.
  const shown = (text: string): string => {
    const word = firstWord(text);
    return JSON.stringify(word === trimBlanks(text) ? word : `${word} ...`);
  };
  const fail = (at: number, why: string): never => {
    throw new EnvFileError(`${fileName} line ${at}: ${why}`);
  };
  const finish = (): void => {
    const name = trimEndBlanks(key);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      fail(keyLine, /^export[ \t]/.test(name) ? `"export" is shell syntax; write ${name.replace(/^export[ \t]+/, "")}=VALUE` : `${shown(name)} is not a variable name`);
    }
    env[name] = value.slice(0, Math.max(valueKeep, trimEndBlanks(value).length));
    key = "";
    value = "";
    valueKeep = 0;
  };
  for (const char of text.replace(/\r\n/g, "\n")) {
    const newline = char === "\n";
    switch (state) {
      case "preKey":
        if (char === "#" || char === ";") state = "comment";
        else if (!isBlank(char)) {
          state = "key";
          key = char;
          keyLine = line;
        }
        break;
      case "key":
        if (newline) fail(keyLine, `${shown(key)} is not KEY=VALUE (is the "=" missing?)`);
        else if (char === "=") state = "preValue";
        else key += char;
        break;
      case "preValue":
        if (newline) {
          finish();
          state = "preKey";
        } else if (char === "'") state = "single";
        else if (char === '"') state = "double";
        else if (char === "\\") state = "valueEscape";
        else if (!isBlank(char)) {
          value += char;
          state = "value";
        }
        break;
      case "value":
        if (newline) {
          finish();
          state = "preKey";
        } else if (char === "\\") state = "valueEscape";
        else value += char;
        break;
      case "valueEscape":
        // A backslash before the newline joins the next line.
        if (!newline) value += char;
        valueKeep = value.length;
        state = "value";
        break;
      case "single":
        if (char === "'") {
          valueKeep = value.length;
          state = "preValue";
        } else value += char;
        break;
      case "double":
        if (char === '"') {
          valueKeep = value.length;
          state = "preValue";
        } else if (char === "\\") state = "doubleEscape";
        else value += char;
        break;
      case "doubleEscape":
        if ('"\\`$'.includes(char)) value += char;
        else if (!newline) value += `\\${char}`;
        state = "double";
        break;
      case "comment":
        if (char === "\\") state = "commentEscape";
        else if (newline) state = "preKey";
        break;
      case "commentEscape":
        // systemd 252 continues such a comment onto the next line and drops that line
        // (newer systemd does not): never let a setting vanish that quietly.
        if (newline) fail(line, `the comment ends in "\\", which systemd 252 continues onto line ${line + 1} and so drops that line; remove the "\\"`);
        state = "comment";
        break;
    }
    if (newline) line++;
  }
  if (state === "single" || state === "double" || state === "doubleEscape") fail(keyLine, `the quote opened for ${firstWord(key)} is never closed`);
  if (state === "key") fail(keyLine, `${shown(key)} is not KEY=VALUE (is the "=" missing?)`);
  if (state === "preValue" || state === "value" || state === "valueEscape") finish();
  return env;
}

/** Refuses QUOBYTE_* names the plugin does not read: a typo must not be a silent default. */
export function checkQuobyteKeys(env: Env, where: string): void {
  for (const name of Object.keys(env)) {
    if (!name.startsWith("QUOBYTE_") || (KNOWN_QUOBYTE_KEYS as readonly string[]).includes(name)) continue;
    const guess = closestName(name, KNOWN_QUOBYTE_KEYS);
    throw new EnvFileError(
      `${where}: unknown variable ${name}${guess ? ` (did you mean ${guess}?)` : ""}; known: ${KNOWN_QUOBYTE_KEYS.join(", ")}`,
    );
  }
}

export interface LoadedEnvironment {
  env: Env;
  /** The env file that was read (explicit, or the default one that exists), if any. */
  envFile: string | undefined;
}

/**
 * The environment a command runs with: the env file (explicit `--env-file`, else the
 * default one when it exists) under the process environment, and the password from
 * `--password-file` over both. The password never comes from a flag's value: that
 * would put it in argv, visible to every user in `ps`. Unknown QUOBYTE_* names are refused
 * in the env file only: a stray variable exported in a shell must not make every command fail.
 */
export function loadEnvironment(options: { envFile?: string; passwordFile?: string }, processEnv: Env): LoadedEnvironment {
  let fileEnv: Env = {};
  const envFile = options.envFile ?? (existsSync(DEFAULTS.envFile) ? DEFAULTS.envFile : undefined);
  if (envFile !== undefined) {
    fileEnv = parseEnvFile(readTextFile("env file", envFile, "--env-file"), envFile);
    checkQuobyteKeys(fileEnv, `env file ${envFile}`);
  }
  const env: Env = { ...fileEnv, ...processEnv };
  if (options.passwordFile !== undefined) {
    env.QUOBYTE_API_PASSWORD = readTextFile("password file", options.passwordFile, "--password-file").replace(/\r?\n$/, "");
  }
  return { env, envFile };
}

/** Reads a file named by a flag; the error names the flag, the file and what is wrong. */
export function readTextFile(what: string, path: string, flag: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    throw new UsageError(`${flag} ${path}: the ${what} ${fsErrorText(error)}`);
  }
}
