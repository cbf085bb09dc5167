import type { ArgsDef, CommandDef } from "citty";

export interface UsageStyle {
  /** Columns to wrap at. */
  width: number;
  color: boolean;
}

/**
 * What help looks like on this stdout: the terminal's width (80 when piped), colours only
 * on a terminal and never with NO_COLOR (https://no-color.org: any non-empty value).
 */
export function usageStyle(stdout: { isTTY?: boolean; columns?: number }, env: Record<string, string | undefined>): UsageStyle {
  const tty = stdout.isTTY === true;
  return { width: tty && stdout.columns ? Math.max(40, stdout.columns) : 80, color: tty && !env.NO_COLOR };
}

/** Greedy word wrap; every line starts with `indent`, a word longer than the width stands alone. */
export function wrap(text: string, width: number, indent: string): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && indent.length + line.length + 1 + word.length > width) {
      lines.push(indent + line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(indent + line);
  return lines;
}

/** Help for the root command (its subcommands) or for one subcommand (its flags). */
export function renderUsage(cmd: CommandDef, style: UsageStyle, parentName?: string): string {
  const paint = (code: number, text: string) => (style.color ? `\u001B[${code}m${text}\u001B[0m` : text);
  const meta = (cmd.meta ?? {}) as { name?: string; description?: string };
  const name = [parentName, meta.name].filter(Boolean).join(" ");
  const out = [...wrap(meta.description ?? "", style.width, ""), ""];
  const subCommands = (cmd.subCommands ?? {}) as Record<string, CommandDef>;
  if (Object.keys(subCommands).length > 0) {
    out.push(`${paint(1, "Usage:")} ${name} <command> [OPTIONS]`, "", paint(1, "Commands:"));
    const pad = Math.max(...Object.keys(subCommands).map((sub) => sub.length)) + 4;
    for (const [sub, def] of Object.entries(subCommands)) {
      const text = wrap(((def.meta ?? {}) as { description?: string }).description ?? "", style.width, " ".repeat(pad));
      out.push(`  ${paint(36, sub)}${(text[0] ?? "").slice(sub.length + 2)}`, ...text.slice(1));
    }
    out.push("", `Run \`${name} <command> --help\` for the flags of a command.`);
    return `${out.join("\n")}\n`;
  }
  out.push(`${paint(1, "Usage:")} ${name} [OPTIONS]`, "", paint(1, "Options:"));
  for (const [flag, def] of Object.entries((cmd.args ?? {}) as ArgsDef)) {
    const hint = def.type === "string" && "valueHint" in def && def.valueHint ? `=<${def.valueHint}>` : "";
    out.push(`  ${paint(36, `--${flag}${hint}`)}`, ...wrap(def.description ?? "", style.width, "      "));
  }
  out.push(`  ${paint(36, "--help")}`, "      Show this help");
  return `${out.join("\n")}\n`;
}
