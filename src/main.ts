import { type CommandDef, runCommand } from "citty";
import { rootCommand } from "./cli/index.ts";
import { UsageError } from "./config.ts";
import { errnoCode, messageOf } from "./core/errors.ts";
import { renderUsage, usageStyle } from "./cli/usage.ts";
import { fsErrorText } from "./fs-error-text.ts";

/** citty's own help runs to 240 columns and colours pipes; ours wraps and stays plain. */
function showUsage(cmd: CommandDef, parent?: CommandDef): void {
  const parentName = parent ? ((parent.meta ?? {}) as { name?: string }).name : undefined;
  process.stdout.write(renderUsage(cmd, usageStyle(process.stdout, process.env), parentName));
}

/**
 * One line, no stack. A file system error reaching here names its path and what to do,
 * not the runtime's text ("EACCES: permission denied, mkdir ...").
 */
function describeFailure(error: unknown): string {
  const path = typeof error === "object" && error !== null && "path" in error ? String((error as { path: unknown }).path) : undefined;
  if (path === undefined || errnoCode(error) === undefined) return messageOf(error).split("\n")[0] ?? "";
  return `${path} ${fsErrorText(error)}`;
}

/** The only place that reads argv and exits: 0 ok, 1 runtime failure, 2 bad usage. */
async function main(rawArgs: string[]): Promise<number> {
  const subName = rawArgs.find((arg) => !arg.startsWith("-"));
  const subCommands = (rootCommand.subCommands ?? {}) as Record<string, CommandDef>;
  const sub = subName === undefined ? undefined : subCommands[subName];
  if (rawArgs.includes("--help") || rawArgs.includes("-h")) {
    if (sub) showUsage(sub, rootCommand as CommandDef);
    else showUsage(rootCommand as CommandDef);
    return 0;
  }
  if (rawArgs.length === 1 && (rawArgs[0] === "--version" || rawArgs[0] === "-v")) {
    process.stdout.write(`${String((rootCommand.meta as { version?: string }).version)}\n`);
    return 0;
  }
  if (subName === undefined || !sub) {
    showUsage(rootCommand as CommandDef);
    process.stderr.write(subName === undefined ? "no command given\n" : `unknown command ${subName}\n`);
    return 2;
  }
  try {
    // The subcommand directly: citty's root drops a subcommand's return value.
    const { result } = await runCommand(sub, { rawArgs: rawArgs.slice(rawArgs.indexOf(subName) + 1) });
    // A command may choose its exit code (status: 1 degraded, 2 unreachable).
    return typeof result === "number" ? result : 0;
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`error: ${error.message} (see docker-quobyte-plugin ${subName} --help)\n`);
      return 2;
    }
    process.stderr.write(`error: ${describeFailure(error)}\n`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
// serve leaves nothing running once it returns; other commands may hold idle handles.
process.exit();
