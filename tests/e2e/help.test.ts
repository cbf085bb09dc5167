// Help as the compiled binary prints it: wrapped to 80 columns when piped (the terminal's
// width on one), colours only on a terminal and never with NO_COLOR.

import { describe, expect, test } from "bun:test";
import { BINARY, runBinary } from "./plugin-process.ts";

const COMMANDS = ["serve", "mount-all", "write-spec", "status", "install"];
const ANSI = /\u001B\[/;

/** Runs under a pseudo-terminal of `columns` columns (util-linux `script`). */
async function onTerminal(args: string[], columns: number, env: Record<string, string> = {}): Promise<string> {
  const command = `stty cols ${columns}; ${[BINARY, ...args].join(" ")}`;
  const proc = Bun.spawn(["script", "-qec", command, "/dev/null"], { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env } });
  const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  expect(code).toBe(0);
  return out.replace(/\r/g, "");
}

describe("help", () => {
  test("piped: every line fits 80 columns, no colours", async () => {
    for (const args of [["--help"], ...COMMANDS.map((command) => [command, "--help"])]) {
      const result = await runBinary(args);
      expect(result.code).toBe(0);
      expect(result.stdout).not.toMatch(ANSI);
      const long = result.stdout.split("\n").filter((line) => line.length > 80);
      expect(long, args.join(" ")).toEqual([]);
    }
  });

  test("on a terminal: its width, colours, and none with NO_COLOR", async () => {
    const wide = await onTerminal(["serve", "--help"], 120);
    expect(wide).toMatch(ANSI);
    const plain = (text: string) => text.replace(/\u001B\[[0-9;]*m/g, "").split("\n");
    expect(Math.max(...plain(wide).map((line) => line.length))).toBeGreaterThan(80);
    expect(plain(wide).every((line) => line.length <= 120)).toBe(true);
    const narrow = await onTerminal(["serve", "--help"], 60);
    expect(plain(narrow).every((line) => line.length <= 60)).toBe(true);
    const noColor = await onTerminal(["serve", "--help"], 120, { NO_COLOR: "1" });
    expect(noColor).not.toMatch(ANSI);
  });
});
