import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { ArgsDef, CommandDef } from "citty";
import { rootCommand } from "../../../src/cli/index.ts";

const readme = readFileSync(join(import.meta.dir, "../../../README.md"), "utf8");

/** The README's "## Commands" section, up to the next second-level heading. */
function commandsSection(): string {
  const start = readme.indexOf("\n## Commands");
  const end = readme.indexOf("\n## ", start + 1);
  return readme.slice(start, end < 0 ? undefined : end);
}

describe("README Commands section", () => {
  test("names every subcommand and every flag", () => {
    const section = commandsSection();
    expect(section.length).toBeGreaterThan(0);
    for (const [name, command] of Object.entries(rootCommand.subCommands as Record<string, CommandDef>)) {
      expect(section, name).toContain(`\`${name}\``);
      for (const flag of Object.keys((command.args ?? {}) as ArgsDef)) expect(section, `${name} --${flag}`).toContain(`\`--${flag}\``);
    }
  });
});
