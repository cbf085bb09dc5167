// Runs the reliability suites (SIGKILL injection, fuzz, hung/dead storage) and prints
// their figures, one per line; with --write it also replaces the README's reliability
// section with them. Usage: bun bench/reliability.ts [--write]   (needs root: FUSE, strace)

import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dir, "..");
const suites = ["tests/reliability/kill-injection.test.ts", "tests/reliability/fuzz.test.ts", "tests/e2e/hung-mount.test.ts"];

const build = Bun.spawn([process.execPath, "run", "build"], { cwd: root, stdout: "ignore", stderr: "inherit" });
if ((await build.exited) !== 0) throw new Error("build failed");

const started = Date.now();
const run = Bun.spawn([process.execPath, "test", "--timeout", "180000", ...suites], { cwd: root, stdout: "pipe", stderr: "pipe" });
const [out, err, code] = await Promise.all([new Response(run.stdout).text(), new Response(run.stderr).text(), run.exited]);
const text = `${out}\n${err}`;

function grab(pattern: RegExp): RegExpMatchArray | null {
  return pattern.exec(text);
}

const kills = grab(/\[kill-injection\] seed \d+: (\d+) SIGKILLs \(stale socket replaced (\d+)x\), restart to serving p50 (\d+) ms max (\d+) ms; (\d+) requests sent/);
const fuzz = grab(/\[fuzz\] seed \d+: (\d+) requests, statuses (\{[^}]*\}), slowest reply (\d+) ms/);
const rss = grab(/\[fuzz\] VmRSS: middle (\d+) MB, end (\d+) MB, peak (\d+) MB/);
const hung = [...text.matchAll(/hung mount: (\w+) answered in (\d+) ms/g)].map((m) => `${m[1]} ${m[2]} ms`);
const hungFail = grab(/hung mount: Create failed in (\d+) ms, Mount in (\d+) ms, the next Mount in (\d+) ms/);
const dead = grab(/dead mount: Create failed in (\d+) ms, Mount in (\d+) ms/);
const passed = grab(/(\d+) pass/)?.[1] ?? "0";
const failed = grab(/(\d+) fail/)?.[1] ?? "?";

const lines = [
  `suites: ${passed} passed, ${failed} failed in ${((Date.now() - started) / 1000).toFixed(0)} s`,
  kills ? `kill points survived: ${kills[1]} SIGKILLs under ${kills[5]} concurrent engine requests, stale socket replaced ${kills[2]}x, restart to serving p50 ${kills[3]} ms (max ${kills[4]} ms)` : "kill points: (not reported)",
  fuzz ? `fuzz cases run: ${fuzz[1]} requests (statuses ${fuzz[2]}), slowest answer ${fuzz[3]} ms, process never exited` : "fuzz: (not reported)",
  rss ? `fuzz memory: VmRSS ${rss[1]} MB mid-run, ${rss[2]} MB at the end, peak ${rss[3]} MB` : "fuzz memory: (not reported)",
  hung.length ? `answers under a frozen FUSE mount: ${hung.join(", ")}` : "hung mount: (not reported)",
  hungFail ? `frozen mount: Create failed after ${hungFail[1]} ms, Mount after ${hungFail[2]} ms (one probe deadline), later Mounts after ${hungFail[3]} ms` : "frozen mount failures: (not reported)",
  dead ? `dead mount (ENOTCONN): Create failed after ${dead[1]} ms, Mount after ${dead[2]} ms` : "dead mount: (not reported)",
];
for (const line of lines) console.log(line);

if (process.argv.includes("--write")) {
  const readme = join(root, "README.md");
  const begin = "<!-- reliability:begin -->";
  const end = "<!-- reliability:end -->";
  const current = readFileSync(readme, "utf8");
  const section = `${begin}\nMeasured by \`bun bench/reliability.ts --write\` on ${new Date().toISOString().slice(0, 10)} (2 cores):\n\n${lines.map((line) => `- ${line}`).join("\n")}\n${end}`;
  const next = current.includes(begin)
    ? current.replace(new RegExp(`${begin}[\\s\\S]*${end}`), section)
    : `${current.trimEnd()}\n\n## Reliability\n\n${section}\n`;
  writeFileSync(readme, next);
}
process.exit(code);
