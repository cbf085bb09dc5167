// Test harness that runs a real, throw-away Docker engine for e2e tests.
//
// Layout: every engine lives in its own short work dir (/tmp/dqp-e2e-XXXXXX) and
// inside a private mount namespace whose /run/docker/plugins and
// /etc/docker/plugins are fresh tmpfs mounts, so plugin discovery only ever
// sees sockets/specs the test itself put there (never the host's stale ones).
//
// Everything that gets started is stopped by PID; nothing here matches
// processes by name.

import { existsSync, closeSync, openSync, readFileSync } from "node:fs";
import { chmod, copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Spawn, Subprocess } from "bun";
import {
  BUSYBOX,
  type EngineBinaries,
  type EngineFlavour,
  ensureEngineBinaries,
  hostFlavour,
} from "./engine-versions.ts";
import {
  allPids,
  isAlive,
  mergeEnv,
  pidsWithCmdline,
  readCmdline,
  readMountNs,
  readPpid,
  type RunOptions,
  type RunResult,
  runArgv,
  runChecked,
  signal,
  sleep,
  terminatePid,
} from "./process.ts";

// The suites import these from here, next to the engine they drive.
export { ensureEnginePackages } from "./engine-versions.ts";
export { isAlive, pidsWithCmdline, runArgv, type RunOptions, type RunResult } from "./process.ts";

const UNSHARE = "/usr/bin/unshare";
const NSENTER = "/usr/bin/nsenter";
const TAR = "/usr/bin/tar";

export const BUSYBOX_IMAGE = "dqp-busybox:e2e";

const ENGINE_READY_TIMEOUT_MS = 60_000;
const DOCKERD_STOP_GRACE_MS = 20_000;
const CONTAINERD_STOP_GRACE_MS = 10_000;
// sun_path is 108 bytes including the terminating NUL.
const MAX_UNIX_SOCKET_PATH = 107;

export interface NsSpawnOptions<Out extends Spawn.Readable, Err extends Spawn.Readable> {
  /** Merged over process.env; `undefined` removes a variable. */
  env?: Record<string, string | undefined>;
  /** Default "inherit": an unread "pipe" would eventually block a long-running process. */
  stdout?: Out;
  /** Default "inherit". */
  stderr?: Err;
  /** Working directory inside the namespace; default workDir. */
  cwd?: string;
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
  /** The same file seen from outside the namespace, e.g. a plugin socket under /run/docker/plugins. */
  fromOutside(pathInside: string): string;
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
  /** Which engine this is (20.10, 26, 28); test names and failures carry it. */
  readonly flavour: EngineFlavour;
  /** Runs this engine's own `docker -H <host> ...args` from outside the namespace. */
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
// Work dir

/** Creates a fresh short work dir; short because the docker socket lives in it. */
export async function createWorkDir(): Promise<string> {
  return await mkdtemp("/tmp/dqp-e2e-");
}

// ---------------------------------------------------------------------------
// Mount namespace

const PRIVATE_PLUGIN_DIRS = ["/run/docker/plugins", "/etc/docker/plugins"] as const;

export async function startNamespace(workDir: string): Promise<Namespace> {
  const hostNs = readMountNs("self");
  const holder = Bun.spawn([UNSHARE, "--mount", "--propagation", "private", "--", "sleep", "infinity"], {
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
  const nsArgv = (argv: string[], cwd: string = workDir): string[] => [
    NSENTER,
    "-t",
    String(pid),
    "-m",
    `--wd=${cwd}`,
    "--",
    ...argv,
  ];

  const run = (argv: string[], opts: RunOptions = {}): Promise<RunResult> => {
    const { cwd, ...rest } = opts;
    return runArgv(nsArgv(argv, cwd), rest);
  };

  try {
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
      return Bun.spawn(nsArgv(argv, opts?.cwd), {
        stdin: "ignore",
        stdout: opts?.stdout ?? ("inherit" as Out),
        stderr: opts?.stderr ?? ("inherit" as Err),
        env: mergeEnv(opts?.env),
      });
    },
    run,
    fromOutside: (pathInside) => `/proc/${pid}/root${pathInside}`,
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
    readonly flavour: EngineFlavour,
    private readonly binaries: EngineBinaries,
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
    return await runArgv([this.binaries.docker, "-H", this.host, ...args], {
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
          this.binaries.dockerd,
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
        { stdout: logFd, stderr: logFd, env: { PATH: this.binaries.daemonPath } },
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
        throw new Error(`dockerd ${this.flavour.id} exited early (code ${proc.exitCode}, signal ${proc.signalCode})\n${this.logTail()}`);
      }
      last = await this.docker(["version", "--format", "{{.Server.Version}}"], { timeoutMs: 5_000 });
      if (last.code === 0) return;
      await sleep(200);
    }
    await this.stop();
    throw new Error(
      `dockerd ${this.flavour.id} not ready after ${ENGINE_READY_TIMEOUT_MS} ms; last: ${last?.stderr.trim()}\n${this.logTail()}`,
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

/**
 * Starts dockerd of `flavour` (default: the host's bookworm engine) inside `ns` with all
 * state under workDir; resolves once the API answers.
 */
export async function startEngine(ns: Namespace, workDir: string, flavour: EngineFlavour = hostFlavour()): Promise<Engine> {
  const engine = new DockerEngine(ns, workDir, flavour, await ensureEngineBinaries(flavour));
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

/**
 * What most e2e suites need: a private namespace, a dockerd of `flavour` in it, the busybox
 * image. The engine's binaries are fetched first, so the namespace never outlives a failed fetch.
 */
export async function startEngineWithImage(
  workDir: string,
  flavour: EngineFlavour = hostFlavour(),
): Promise<{ ns: Namespace; engine: Engine }> {
  await ensureEngineBinaries(flavour);
  const ns = await startNamespace(workDir);
  let engine: Engine | undefined;
  try {
    engine = await startEngine(ns, workDir, flavour);
    await buildBusyboxImage(engine);
    return { ns, engine };
  } catch (e) {
    // The caller never gets hold of them, so nothing else would stop them.
    await engine?.destroy();
    await ns.stop();
    throw e;
  }
}
