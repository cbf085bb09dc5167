import { type ConsolaInstance, type ConsolaReporter, createConsola, LogLevels, type LogObject } from "consola/core";

export const LOG_LEVELS = ["silent", "fatal", "error", "warn", "info", "debug", "trace"] as const;
export type LogLevelName = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ["pretty", "json"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
export type Logger = ConsolaInstance;
export { LogLevels };

/** Where log lines go; stdout stays free for command output such as `status --json`. */
export interface LogSink {
  write(line: string): void;
}

const stderrSink: LogSink = { write: (line) => process.stderr.write(line) };

/**
 * One JSON object per line, for journald and log shippers: time, level, tag, msg and the
 * fields of a trailing plain-object argument (`log.warn("failed", { volume, code })`).
 */
export function jsonReporter(sink: LogSink = stderrSink): ConsolaReporter {
  return {
    log(entry: LogObject) {
      const { text, fields } = splitArgs(entry);
      const line: Record<string, unknown> = {
        time: entry.date.toISOString(),
        level: entry.type,
        ...(entry.tag ? { tag: entry.tag } : {}),
        msg: text,
        ...fields,
      };
      sink.write(`${JSON.stringify(line)}\n`);
    },
  };
}

/** Readable lines for a terminal: `time level [tag] message key=value ...`. */
export function prettyReporter(sink: LogSink = stderrSink): ConsolaReporter {
  return {
    log(entry: LogObject) {
      const { text, fields } = splitArgs(entry);
      const pairs = Object.entries(fields)
        .map(([key, value]) => `${key}=${JSON.stringify(value) ?? "undefined"}`)
        .join(" ");
      const tag = entry.tag ? ` [${entry.tag}]` : "";
      sink.write(`${entry.date.toISOString()} ${entry.type.toUpperCase()}${tag} ${text}${pairs ? ` ${pairs}` : ""}\n`);
    },
  };
}

/**
 * The one logger of a process. Level and reporter are set explicitly: consola's own
 * defaults change with CI and test environment variables, which a daemon must not.
 */
export function createLogger(options: { level: LogLevelName; format: LogFormat; sink?: LogSink }): Logger {
  const reporter = options.format === "json" ? jsonReporter(options.sink) : prettyReporter(options.sink);
  return createConsola({
    level: LogLevels[options.level],
    reporters: [reporter],
    // Identical lines from different requests are different events; never fold them.
    throttle: 0,
  });
}

/** A trailing plain object carries structured fields; the rest is the message. */
function splitArgs(entry: LogObject): { text: string; fields: Record<string, unknown> } {
  const args = [...entry.args];
  const fields = isPlainObject(args.at(-1)) ? (args.pop() as Record<string, unknown>) : {};
  const text = args.map((arg) => (arg instanceof Error ? arg.message : String(arg))).join(" ");
  return { text, fields };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && Object.getPrototypeOf(value) === Object.prototype;
}
