// Test harness that runs a real, throw-away Docker engine for e2e tests.
//
// Layout: every engine lives in its own short work dir (/tmp/dqp-e2e-XXXXXX) and
// inside a private mount namespace whose /run/docker/plugins and
// /etc/docker/plugins are fresh tmpfs mounts, so plugin discovery only ever
// sees sockets/specs the test itself put there (never the host's stale ones).
//
// Everything that gets started is stopped by PID; nothing here matches
// processes by name.

import { existsSync, closeSync, openSync, readFileSync, readdirSync, readlinkSync } from "node:fs";
import { chmod, copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Spawn, Subprocess } from "bun";

// Debian's binaries, by absolute path: /usr/local/bin/docker is a different,
// newer client that must not be picked up via PATH.
export const DOCKERD = "/usr/sbin/dockerd";
export const DOCKER = "/usr/bin/docker";
export const BUSYBOX = "/bin/busybox";
const UNSHARE = "/usr/bin/unshare";
const NSENTER = "/usr/bin/nsenter";
const TAR = "/usr/bin/tar";

export const BUSYBOX_IMAGE = "dqp-busybox:e2e";

// dockerd looks up containerd/runc/docker-init via PATH; keep it to Debian's.
const DAEMON_PATH = "/usr/sbin:/usr/bin:/sbin:/bin";

const DEFAULT_RUN_TIMEOUT_MS = 60_000;
const ENGINE_READY_TIMEOUT_MS = 60_000;
const DOCKERD_STOP_GRACE_MS = 20_000;
const CONTAINERD_STOP_GRACE_MS = 10_000;
// sun_path is 108 bytes including the terminating NUL.
const MAX_UNIX_SOCKET_PATH = 107;

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Kill (SIGKILL) after this long; the result then has code 124. Default 60 s. */
  timeoutMs?: number;
  /** Written to the process' stdin; stdin is closed (ignored) when absent. */
  stdin?: string;
  /** Merged over process.env; `undefined` removes a variable. */
  env?: Record<string, string | undefined>;
  /** Working directory (inside the namespace for Namespace.run; default there: workDir). */
  cwd?: string;
}

export interface NsSpawnOptions<Out extends Spawn.Readable, Err extends Spawn.Readable> {
  /** Merged over process.env; `undefined` removes a variable. */
  env?: Record<string, string | undefined>;
  /** Default "inherit": an unread "pipe" would eventually block a long-running process. */
  stdout?: Out;
  /** Default "inherit". */
  stderr?: Err;
  /** Working directory inside the namespace; default workDir. */
  cwd?: string;
  /**
   * Stay in the host's network namespace even when the namespace has its own (a plugin
   * that reaches a storage API on the host's loopback; its engine talks to it by socket).
   */
  hostNetwork?: boolean;
}

export interface Namespace {
  /** PID of the holder process (`sleep infinity`) that keeps the namespace alive. */
  readonly pid: number;
  /** e.g. "mnt:[4026532178]"; differs from the host's. */
  readonly mountNamespace: string;
  /**
   * Runs argv inside the namespace via `nsenter -t <pid> -m -- ...argv`. nsenter
   * exec()s the program without forking (no -p/-F), so the returned subprocess'
   * pid is the program's own pid once the exec happened.
   */
  spawn<Out extends Spawn.Readable = "inherit", Err extends Spawn.Readable = "inherit">(
    argv: string[],
    opts?: NsSpawnOptions<Out, Err>,
  ): Subprocess<"ignore", Out, Err>;
  run(argv: string[], opts?: RunOptions): Promise<RunResult>;
  /** Kills the holder and any process still inside the namespace, by PID. Idempotent. */
  stop(): Promise<void>;
}

export interface DockerOptions {
  /** Default 60 s; on timeout the client is SIGKILLed and code is 124. */
  timeoutMs?: number;
  stdin?: string;
}

export interface Engine {
  /** "unix:///tmp/dqp-e2e-XXXXXX/docker.sock" */
  readonly host: string;
  /** Current dockerd pid (changes on restart()). */
  readonly pid: number;
  /** Tag of the busybox image; exists only after buildBusyboxImage(). */
  readonly image: string;
  readonly workDir: string;
  readonly dataRoot: string;
  readonly execRoot: string;
  readonly logPath: string;
  /** Runs `/usr/bin/docker -H <host> ...args` from outside the namespace. */
  docker(args: string[], opts?: DockerOptions): Promise<RunResult>;
  /** PID of the containerd that dockerd started, if it is running. */
  containerdPid(): number | undefined;
  restart(): Promise<void>;
  /** Stops dockerd, its containerd and any shims, by PID. Idempotent. */
  stop(): Promise<void>;
  /** stop() and then remove workDir recursively. */
  destroy(): Promise<void>;
  /** Contents of dockerd.log (all starts, appended), for failure messages. */
  log(): string;
}

// ---------------------------------------------------------------------------
// Generic process helpers

/** Runs argv (no shell) and collects its output; never rejects on non-zero exit. */
export async function runArgv(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_RUN_TIMEOUT_MS;
  const proc = Bun.spawn(argv, {
    stdin: opts.stdin === undefined ? "ignore" : new TextEncoder().encode(opts.stdin),
    stdout: "pipe",
    stderr: "pipe",
    env: mergeEnv(opts.env),
    ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }),
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill("SIGKILL");
  }, timeoutMs);
  try {
    const [stdout, stderr, code] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
    if (timedOut) {
      // 124 mirrors timeout(1), so a hang is distinguishable from a failure.
      return { code: 124, stdout, stderr: `${stderr}\n[e2e] timed out after ${timeoutMs} ms: ${argv.join(" ")}` };
    }
    return { code, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
}

/** process.env overlaid with `extra`; an `undefined` value removes the variable. */
function mergeEnv(extra: Record<string, string | undefined> | undefined): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, ...extra })) {
    if (v !== undefined) env[k] = v;
  }
  return env;
}

function describeResult(argv: string[], r: RunResult): string {
  return `${argv.join(" ")} exited ${r.code}\nstdout: ${r.stdout.trim()}\nstderr: ${r.stderr.trim()}`;
}

async function runChecked(argv: string[], opts?: RunOptions): Promise<RunResult> {
  const r = await runArgv(argv, opts);
  if (r.code !== 0) throw new Error(describeResult(argv, r));
  return r;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** True while pid exists and is not a zombie (an unreaped corpse counts as gone). */
export function isAlive(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return false;
  }
  // The state field follows the parenthesised comm, which may contain spaces.
  const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  return state !== "Z" && state !== "X";
}

function readCmdline(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
  } catch {
    return undefined;
  }
}

function readPpid(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ppid = Number(fields[1]);
    return Number.isInteger(ppid) ? ppid : undefined;
  } catch {
    return undefined;
  }
}

function readMountNs(pid: number | "self"): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return undefined;
  }
}

function allPids(): number[] {
  return readdirSync("/proc")
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .filter((pid) => pid !== process.pid);
}

/** PIDs whose command line contains `needle` (used to find leftovers of one work dir). */
export function pidsWithCmdline(needle: string): number[] {
  return allPids().filter((pid) => isAlive(pid) && (readCmdline(pid)?.includes(needle) ?? false));
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Already gone (ESRCH) is exactly what we want.
  }
}

async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() >= deadline) return false;
    await sleep(50);
  }
  return true;
}

/** SIGTERM, wait up to graceMs, then SIGKILL. Throws if the pid still survives. */
async function terminatePid(pid: number, graceMs: number): Promise<void> {
  if (!isAlive(pid)) return;
  signal(pid, "SIGTERM");
  if (await waitGone(pid, graceMs)) return;
  signal(pid, "SIGKILL");
  if (!(await waitGone(pid, 10_000))) throw new Error(`pid ${pid} survived SIGKILL`);
}

// ---------------------------------------------------------------------------
// Packages

let packagesReady: Promise<void> | undefined;

async function missingEngineBits(): Promise<string[]> {
  const missing: string[] = [];
  if (!existsSync(DOCKERD)) missing.push(DOCKERD);
  if (!existsSync(DOCKER)) missing.push(DOCKER);
  // /bin/busybox may also come from the dynamically linked `busybox` package;
  // only the static one works when copied alone into an image.
  const status = await runArgv(["dpkg-query", "-W", "-f=${Status}", "busybox-static"]);
  if (!existsSync(BUSYBOX) || status.code !== 0 || !status.stdout.includes("install ok installed")) {
    missing.push(`${BUSYBOX} (busybox-static)`);
  }
  return missing;
}

/** Installs docker.io + busybox-static via apt when any engine binary is missing. Memoised. */
export function ensureEnginePackages(): Promise<void> {
  packagesReady ??= (async () => {
    const missing = await missingEngineBits();
    if (missing.length === 0) return;
    if (process.getuid?.() !== 0) {
      throw new Error(
        `e2e engine needs ${missing.join(", ")}; run as root or install them: apt-get install -y docker.io busybox-static`,
      );
    }
    const env = { NEEDRESTART_SUSPEND: "1", DEBIAN_FRONTEND: "noninteractive" };
    await runChecked(["apt-get", "update"], { env, timeoutMs: 600_000 });
    await runChecked(["apt-get", "install", "-y", "docker.io", "busybox-static"], { env, timeoutMs: 900_000 });
    const still = await missingEngineBits();
    if (still.length > 0) throw new Error(`still missing after apt-get install: ${still.join(", ")}`);
  })();
  // Don't cache a failure: a later caller may have fixed the environment.
  packagesReady.catch(() => {
    packagesReady = undefined;
  });
  return packagesReady;
}

// ---------------------------------------------------------------------------
// Work dir

/** Creates a fresh short work dir; short because the docker socket lives in it. */
export async function createWorkDir(): Promise<string> {
  return await mkdtemp("/tmp/dqp-e2e-");
}

// ---------------------------------------------------------------------------
// Mount namespace

const PRIVATE_PLUGIN_DIRS = ["/run/docker/plugins", "/etc/docker/plugins"] as const;

export interface NamespaceOptions {
  /** Also a private UTS namespace with this hostname (a "host" of its own). */
  hostname?: string;
  /**
   * Join this network namespace (/run/netns/NAME). Entered with `nsenter --net` inside the
   * unshare, never `ip netns exec`: that remounts /sys, hides the cgroup v1 mounts, and
   * dockerd then fails with "Devices cgroup isn't mounted".
   */
  netns?: string;
}

export async function startNamespace(workDir: string, opts: NamespaceOptions = {}): Promise<Namespace> {
  const hostNs = readMountNs("self");
  const unshare = [UNSHARE, "--mount", ...(opts.hostname === undefined ? [] : ["--uts"]), "--propagation", "private", "--"];
  const joinNet = opts.netns === undefined ? [] : [NSENTER, `--net=${opts.netns}`, "--"];
  const holder = Bun.spawn([...unshare, ...joinNet, "sleep", "infinity"], {
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
    cwd: workDir,
  });
  const pid = holder.pid;
  const killHolder = async (): Promise<void> => {
    holder.kill("SIGKILL");
    await holder.exited;
  };

  // Before the exec to sleep, the pid may still be in the host namespace;
  // nsenter'ing it then would mount tmpfs over the HOST's plugin dirs.
  let mountNamespace: string | undefined;
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (holder.exitCode !== null) {
      const err = await new Response(holder.stderr).text();
      throw new Error(`unshare exited ${holder.exitCode}: ${err.trim()}`);
    }
    let comm = "";
    try {
      comm = readFileSync(`/proc/${pid}/comm`, "utf8").trim();
    } catch {
      // not visible yet
    }
    const ns = readMountNs(pid);
    if (comm === "sleep" && ns !== undefined && ns !== hostNs) {
      mountNamespace = ns;
      break;
    }
    if (Date.now() >= deadline) {
      await killHolder();
      throw new Error(`namespace holder ${pid} never entered a private mount namespace (comm=${comm}, ns=${ns})`);
    }
    await sleep(10);
  }

  // setns() into a mount namespace resets cwd to its root, so the working
  // directory has to be passed to nsenter rather than to spawn().
  const nsFlags = (hostNetwork = false): string[] => [
    "-m",
    ...(opts.hostname === undefined ? [] : ["-u"]),
    ...(opts.netns === undefined || hostNetwork ? [] : ["-n"]),
  ];
  const nsArgv = (argv: string[], cwd: string = workDir, hostNetwork = false): string[] => [
    NSENTER,
    "-t",
    String(pid),
    ...nsFlags(hostNetwork),
    `--wd=${cwd}`,
    "--",
    ...argv,
  ];

  const run = (argv: string[], opts: RunOptions = {}): Promise<RunResult> => {
    const { cwd, ...rest } = opts;
    return runArgv(nsArgv(argv, cwd), rest);
  };

  try {
    if (opts.hostname !== undefined) await runChecked(nsArgv(["hostname", opts.hostname]));
    await runChecked(nsArgv(["mkdir", "-p", ...PRIVATE_PLUGIN_DIRS]));
    for (const dir of PRIVATE_PLUGIN_DIRS) {
      await runChecked(nsArgv(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", dir]));
    }
  } catch (e) {
    await killHolder();
    throw e;
  }

  let stopped = false;
  return {
    pid,
    mountNamespace,
    spawn<Out extends Spawn.Readable = "inherit", Err extends Spawn.Readable = "inherit">(
      argv: string[],
      opts?: NsSpawnOptions<Out, Err>,
    ): Subprocess<"ignore", Out, Err> {
      return Bun.spawn(nsArgv(argv, opts?.cwd, opts?.hostNetwork), {
        stdin: "ignore",
        stdout: opts?.stdout ?? ("inherit" as Out),
        stderr: opts?.stderr ?? ("inherit" as Err),
        env: mergeEnv(opts?.env),
      });
    },
    run,
    async stop(): Promise<void> {
      if (stopped) return;
      stopped = true;
      await killHolder();
      // Anything left in the namespace keeps it (and its mounts) alive; those are
      // ours by construction, so end them too, loudly so the leak gets fixed.
      const stragglers = allPids().filter((p) => isAlive(p) && readMountNs(p) === mountNamespace);
      if (stragglers.length > 0) {
        console.warn(
          `[e2e] namespace ${mountNamespace}: stopping leftover processes ${stragglers
            .map((p) => `${p} (${readCmdline(p)?.trim() ?? "?"})`)
            .join(", ")}`,
        );
        await Promise.all(stragglers.map((p) => terminatePid(p, 5_000)));
      }
    },
  };
}

// ---------------------------------------------------------------------------
// Engine

class DockerEngine implements Engine {
  readonly host: string;
  readonly image = BUSYBOX_IMAGE;
  readonly dataRoot: string;
  readonly execRoot: string;
  readonly logPath: string;
  private readonly socketPath: string;
  private readonly pidFile: string;
  private readonly configFile: string;
  private readonly clientConfigDir: string;
  private proc: Subprocess<"ignore", number, number> | undefined;
  private lastPid = 0;

  constructor(
    private readonly ns: Namespace,
    readonly workDir: string,
  ) {
    this.dataRoot = join(workDir, "data");
    this.execRoot = join(workDir, "exec");
    this.logPath = join(workDir, "dockerd.log");
    this.socketPath = join(workDir, "docker.sock");
    this.pidFile = join(workDir, "docker.pid");
    this.configFile = join(workDir, "daemon.json");
    this.clientConfigDir = join(workDir, "client-config");
    this.host = `unix://${this.socketPath}`;
    if (Buffer.byteLength(this.socketPath) > MAX_UNIX_SOCKET_PATH) {
      throw new Error(`docker socket path too long for a unix socket (${this.socketPath}); use a shorter workDir`);
    }
  }

  get pid(): number {
    return this.lastPid;
  }

  async docker(args: string[], opts: DockerOptions = {}): Promise<RunResult> {
    return await runArgv([DOCKER, "-H", this.host, ...args], {
      ...opts,
      // Own client config dir: the host's ~/.docker (contexts, creds helpers) must not leak in.
      env: { DOCKER_CONFIG: this.clientConfigDir, DOCKER_HOST: undefined, DOCKER_CONTEXT: undefined, DOCKER_TLS_VERIFY: undefined },
    });
  }

  containerdPid(): number | undefined {
    // dockerd's managed containerd writes its pid under <exec-root>/containerd.
    let pid: number;
    try {
      pid = Number(readFileSync(join(this.execRoot, "containerd", "containerd.pid"), "utf8").trim());
    } catch {
      return undefined;
    }
    // Guard against a stale pidfile whose pid got reused by something unrelated.
    if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return undefined;
    return readCmdline(pid)?.includes(this.execRoot) ? pid : undefined;
  }

  async start(): Promise<void> {
    await mkdir(this.dataRoot, { recursive: true });
    await mkdir(this.execRoot, { recursive: true });
    await mkdir(this.clientConfigDir, { recursive: true });
    // An explicit empty config keeps a host /etc/docker/daemon.json out of the test.
    if (!existsSync(this.configFile)) await writeFile(this.configFile, "{}\n");
    // dockerd refuses to start if the pidfile names a live process.
    if (existsSync(this.pidFile)) {
      const old = Number(readFileSync(this.pidFile, "utf8").trim());
      if (!isAlive(old)) await rm(this.pidFile, { force: true });
    }

    const logFd = openSync(this.logPath, "a");
    try {
      const proc = this.ns.spawn(
        [
          DOCKERD,
          "--config-file",
          this.configFile,
          "--data-root",
          this.dataRoot,
          "--exec-root",
          this.execRoot,
          "-H",
          this.host,
          "--pidfile",
          this.pidFile,
          "--storage-driver=vfs",
          "--iptables=false",
          "--bridge=none",
        ],
        { stdout: logFd, stderr: logFd, env: { PATH: DAEMON_PATH } },
      );
      this.proc = proc;
      this.lastPid = proc.pid;
    } finally {
      // The child holds its own copy of the fd.
      closeSync(logFd);
    }
    await this.waitReady();
  }

  private async waitReady(): Promise<void> {
    const proc = this.proc;
    if (proc === undefined) throw new Error("dockerd not started");
    const deadline = Date.now() + ENGINE_READY_TIMEOUT_MS;
    let last: RunResult | undefined;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new Error(`dockerd exited early (code ${proc.exitCode}, signal ${proc.signalCode})\n${this.logTail()}`);
      }
      last = await this.docker(["version", "--format", "{{.Server.Version}}"], { timeoutMs: 5_000 });
      if (last.code === 0) return;
      await sleep(200);
    }
    await this.stop();
    throw new Error(
      `dockerd not ready after ${ENGINE_READY_TIMEOUT_MS} ms; last: ${last?.stderr.trim()}\n${this.logTail()}`,
    );
  }

  private async stopDaemon(): Promise<void> {
    // Read before stopping: a clean shutdown removes the pidfile.
    const containerd = this.containerdPid();
    const proc = this.proc;
    if (proc !== undefined) {
      proc.kill("SIGTERM");
      const exited = await Promise.race([proc.exited.then(() => true), sleep(DOCKERD_STOP_GRACE_MS).then(() => false)]);
      if (!exited) {
        console.warn(`[e2e] dockerd ${proc.pid} ignored SIGTERM for ${DOCKERD_STOP_GRACE_MS} ms; SIGKILL`);
        proc.kill("SIGKILL");
        await proc.exited;
      }
      this.proc = undefined;
    }
    // dockerd normally stops its containerd; after a SIGKILL it would not.
    if (containerd !== undefined) await terminatePid(containerd, CONTAINERD_STOP_GRACE_MS);
    // Shims outlive containerd by design; they (and their containers) name our exec root.
    await this.killLeftovers();
    // A dead containerd can linger as a zombie until PID 1 reaps it; dockerd's
    // kill(pid, 0) check then "reuses" it from the pidfile and times out.
    await rm(join(this.execRoot, "containerd", "containerd.pid"), { force: true });
  }

  private async killLeftovers(): Promise<void> {
    const leftovers = pidsWithCmdline(`${this.execRoot}/`);
    if (leftovers.length === 0) return;
    // Kill a shim's container init first: killing the shim alone would orphan it.
    const children = allPids().filter((p) => {
      const ppid = readPpid(p);
      return ppid !== undefined && leftovers.includes(ppid) && !leftovers.includes(p);
    });
    for (const p of children) signal(p, "SIGKILL");
    await Promise.all([...children, ...leftovers].map((p) => terminatePid(p, 5_000)));
  }

  async restart(): Promise<void> {
    await this.stopDaemon();
    await this.start();
  }

  async stop(): Promise<void> {
    await this.stopDaemon();
  }

  async destroy(): Promise<void> {
    await this.stop();
    await rm(this.workDir, { recursive: true, force: true, maxRetries: 5 });
  }

  log(): string {
    try {
      return readFileSync(this.logPath, "utf8");
    } catch {
      return "";
    }
  }

  private logTail(lines = 60): string {
    return `--- ${this.logPath} (tail) ---\n${this.log().split("\n").slice(-lines).join("\n")}`;
  }
}

/** Starts dockerd inside `ns` with all state under workDir; resolves once the API answers. */
export async function startEngine(ns: Namespace, workDir: string): Promise<Engine> {
  const engine = new DockerEngine(ns, workDir);
  await engine.start();
  return engine;
}

// ---------------------------------------------------------------------------
// Image

const BUSYBOX_APPLETS = [
  "sh",
  "ls",
  "cat",
  "echo",
  "true",
  "mkdir",
  "sleep",
  "touch",
  "stat",
  "id",
  "test",
  "rm",
  "wc",
] as const;

/**
 * Imports a minimal image (static busybox + applet symlinks) as engine.image.
 * No registry involved. Containers must run with `--network none` (no bridge).
 */
export async function buildBusyboxImage(engine: Engine): Promise<string> {
  const exists = await engine.docker(["image", "inspect", "--format", "{{.Id}}", engine.image]);
  if (exists.code === 0) return engine.image;

  const rootfs = join(engine.workDir, "rootfs");
  await rm(rootfs, { recursive: true, force: true });
  for (const dir of ["bin", "etc", "dev", "proc", "sys", "root", "tmp"]) {
    await mkdir(join(rootfs, dir), { recursive: true });
  }
  await chmod(join(rootfs, "tmp"), 0o1777);
  await copyFile(BUSYBOX, join(rootfs, "bin", "busybox"));
  await chmod(join(rootfs, "bin", "busybox"), 0o755);
  for (const applet of BUSYBOX_APPLETS) {
    await symlink("busybox", join(rootfs, "bin", applet));
  }
  // So `id` and `--user` resolve names instead of printing bare numbers.
  await writeFile(join(rootfs, "etc", "passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n");
  await writeFile(join(rootfs, "etc", "group"), "root:x:0:\nnogroup:x:65534:\n");

  // A tar file instead of a pipe: simpler, and docker import streams it itself.
  const tarball = join(engine.workDir, "rootfs.tar");
  await runChecked([TAR, "--numeric-owner", "-C", rootfs, "-cf", tarball, "."]);
  const imported = await engine.docker([
    "import",
    "--change",
    "ENV PATH=/bin",
    "--change",
    'CMD ["/bin/sh"]',
    tarball,
    engine.image,
  ]);
  await rm(tarball, { force: true });
  if (imported.code !== 0) throw new Error(`docker import failed: ${imported.stderr.trim()}\n${engine.log().slice(-4000)}`);
  return engine.image;
}

/** What most e2e suites need: a private namespace, a dockerd in it, the busybox image. */
export async function startEngineWithImage(workDir: string, nsOpts: NamespaceOptions = {}): Promise<{ ns: Namespace; engine: Engine }> {
  await ensureEnginePackages();
  const ns = await startNamespace(workDir, nsOpts);
  const engine = await startEngine(ns, workDir);
  await buildBusyboxImage(engine);
  return { ns, engine };
}
