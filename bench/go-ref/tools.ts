// What the comparison with Go needs on this machine, installed with apt-get as root, and
// the two Go programs built offline: the reference plugin (standard library only) and the
// load generator on dockerd's pkg/plugins (GOPATH mode against /usr/share/gocode, where
// Debian's golang-github-docker-docker-dev puts the engine's source).

import { existsSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const HERE = import.meta.dir;
const BIN = join(HERE, "bin");
const GOCODE = "/usr/share/gocode";

/** A file or command each package provides; installed only when it is missing. */
const NEEDS: { package: string; present: () => boolean }[] = [
  { package: "golang-go", present: () => Bun.which("go") !== null },
  { package: "golang-github-docker-docker-dev", present: () => existsSync(join(GOCODE, "src/github.com/docker/docker/pkg/plugins/client.go")) },
  { package: "systemd", present: () => Bun.which("systemd-socket-activate") !== null },
];

function run(argv: string[], env?: Record<string, string>): void {
  const result = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe", env: env ? { ...process.env, ...env } : process.env });
  if (result.exitCode !== 0) {
    throw new Error(`${argv.join(" ")} failed (${result.exitCode}):\n${result.stderr.toString()}${result.stdout.toString().slice(-2000)}`);
  }
}

/** Installs the missing packages (root only; otherwise says what to install). */
export function ensurePackages(say: (line: string) => void): void {
  const missing = NEEDS.filter((need) => !need.present()).map((need) => need.package);
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    throw new Error(`the Go comparison needs ${missing.join(", ")}: run as root, or apt-get install -y ${missing.join(" ")}`);
  }
  say(`# installing ${missing.join(", ")} with apt-get`);
  const lock = ["-o", "DPkg::Lock::Timeout=900"];
  run(["apt-get", ...lock, "update"]);
  run(["apt-get", ...lock, "install", "-y", "--no-install-recommends", ...missing], { DEBIAN_FRONTEND: "noninteractive" });
}

function newestSource(dir: string): number {
  return Math.max(...readdirSync(dir).filter((f) => f.endsWith(".go")).map((f) => statSync(join(dir, f)).mtimeMs));
}

export interface GoTools {
  plugin: string;
  loadgen: string;
}

export function buildGoTools(say: (line: string) => void): GoTools {
  ensurePackages(say);
  const env = {
    GO111MODULE: "off",
    GOPATH: `${join(BIN, "gopath")}:${GOCODE}`,
    GOCACHE: join(BIN, "cache"),
    GOFLAGS: "",
    GOPROXY: "off",
  };
  const tools: Partial<GoTools> = {};
  for (const name of ["plugin", "loadgen"] as const) {
    const output = join(BIN, name);
    const source = join(HERE, name);
    if (!(existsSync(output) && statSync(output).mtimeMs > newestSource(source))) {
      mkdirSync(BIN, { recursive: true });
      const result = Bun.spawnSync(["go", "build", "-o", output, "."], { cwd: source, stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env } });
      if (result.exitCode !== 0) throw new Error(`go build of bench/go-ref/${name} failed:\n${result.stderr.toString()}`);
    }
    tools[name] = output;
  }
  return tools as GoTools;
}
