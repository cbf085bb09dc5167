// The Docker engines the e2e suites run against, and how each one's binaries are found.
//
// 20.10 is Debian bookworm's docker.io, installed on the host. 26.1 (trixie) and 28.5 (sid)
// are never installed: their docker.io, docker-cli and containerd packages are fetched once
// with `apt-get download` through a private sources list and lists dir, unpacked with
// `dpkg-deb -x` and cached under /var/cache, then put first on the test engine's PATH only.
// The host's runc and docker-init (tini) stay in use: sid's runc needs a newer glibc.

import { existsSync, readFileSync, readdirSync } from "node:fs";
import { mkdir, mkdtemp, readlink, rename, rm, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe } from "bun:test";
import { runArgv, runChecked } from "./process.ts";

// Debian bookworm's own engine, by absolute path: /usr/local/bin/docker is a different,
// newer client that must not be picked up via PATH.
const HOST_DOCKERD = "/usr/sbin/dockerd";
const HOST_DOCKER = "/usr/bin/docker";
export const BUSYBOX = "/bin/busybox";

let packagesReady: Promise<void> | undefined;

async function missingEngineBits(): Promise<string[]> {
  const missing: string[] = [];
  if (!existsSync(HOST_DOCKERD)) missing.push(HOST_DOCKERD);
  if (!existsSync(HOST_DOCKER)) missing.push(HOST_DOCKER);
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

export interface EngineFlavour {
  /** Short name used in test names, in DQP_E2E_ENGINE and in the README's table. */
  readonly id: string;
  /** Where the binaries come from, for messages. */
  readonly source: string;
  /** Debian suite to fetch from; undefined for the host's own packages. */
  readonly suite?: string;
  /** The upstream version the suite must still carry, e.g. "28.5." (a changed mirror fails loudly). */
  readonly versionPrefix: string;
}

export interface EngineBinaries {
  readonly dockerd: string;
  readonly docker: string;
  /** PATH for dockerd: where it finds containerd, the shim, runc and docker-init. */
  readonly daemonPath: string;
}

const HOST_DAEMON_PATH = "/usr/sbin:/usr/bin:/sbin:/bin";

export const ENGINE_FLAVOURS: readonly EngineFlavour[] = [
  { id: "20.10", source: "Debian bookworm docker.io (host)", versionPrefix: "20.10." },
  { id: "26", source: "Debian trixie docker.io", suite: "trixie", versionPrefix: "26.1." },
  { id: "28", source: "Debian sid docker.io", suite: "sid", versionPrefix: "28.5." },
];

/** Picks one or more engines for a quick local run, e.g. DQP_E2E_ENGINE=28 or =20.10,28. */
export const ENGINE_SELECTOR = "DQP_E2E_ENGINE";

/** The engines this run covers: all of them unless DQP_E2E_ENGINE names some. */
export function enginesUnderTest(): EngineFlavour[] {
  const wanted = process.env[ENGINE_SELECTOR]?.trim();
  if (!wanted) return [...ENGINE_FLAVOURS];
  const ids = wanted.split(",").map((id) => id.trim()).filter(Boolean);
  const unknown = ids.filter((id) => !ENGINE_FLAVOURS.some((f) => f.id === id));
  if (unknown.length > 0) {
    throw new Error(
      `${ENGINE_SELECTOR}=${wanted}: unknown engine ${unknown.join(", ")}; use one or more of ${ENGINE_FLAVOURS.map((f) => f.id).join(", ")} (comma-separated), or unset it for all`,
    );
  }
  return ENGINE_FLAVOURS.filter((f) => ids.includes(f.id));
}

/**
 * Declares a suite once per engine under test, inside a describe named "docker <id>", so
 * every test name (and so every failure) says which engine it ran on.
 */
export function forEachEngine(suite: (flavour: EngineFlavour) => void): void {
  for (const flavour of enginesUnderTest()) describe(`docker ${flavour.id}`, () => suite(flavour));
}

export function hostFlavour(): EngineFlavour {
  const host = ENGINE_FLAVOURS.find((f) => f.suite === undefined);
  if (host === undefined) throw new Error("no host engine flavour defined");
  return host;
}

/** Where fetched engines are unpacked, one directory per flavour. */
export const ENGINE_CACHE = "/var/cache/dqp-e2e-engines";

const ready = new Map<string, Promise<EngineBinaries>>();

/** The binaries of `flavour`, fetching and unpacking them on first use. Memoised per process. */
export function ensureEngineBinaries(flavour: EngineFlavour): Promise<EngineBinaries> {
  let pending = ready.get(flavour.id);
  if (pending === undefined) {
    pending = resolveBinaries(flavour);
    ready.set(flavour.id, pending);
    // Don't cache a failure: a later caller may have fixed the environment.
    pending.catch(() => ready.delete(flavour.id));
  }
  return pending;
}

async function resolveBinaries(flavour: EngineFlavour): Promise<EngineBinaries> {
  // Busybox, runc, tini and the host's engine are needed by every flavour.
  await ensureEnginePackages();
  if (flavour.suite === undefined) {
    return { dockerd: HOST_DOCKERD, docker: HOST_DOCKER, daemonPath: HOST_DAEMON_PATH };
  }
  const root = join(ENGINE_CACHE, `docker-${flavour.id}`);
  const cached = cachedVersion(root);
  if (cached === undefined || !cached.startsWith(flavour.versionPrefix)) {
    // A copy of another version (ENGINE_FLAVOURS was changed) is replaced, never used.
    if (cached !== undefined) await rm(root, { recursive: true, force: true });
    await fetchEngine(flavour, root);
  }
  return {
    dockerd: join(root, "usr/sbin/dockerd"),
    docker: join(root, "usr/bin/docker"),
    daemonPath: `${join(root, "usr/sbin")}:${join(root, "usr/bin")}:${HOST_DAEMON_PATH}`,
  };
}

/** The version of the engine unpacked at root, if any, without a Debian epoch. */
function cachedVersion(root: string): string | undefined {
  try {
    return readFileSync(join(root, "VERSION"), "utf8").trim().replace(/^\d+:/, "");
  } catch {
    return undefined;
  }
}

/** docker.io and docker-cli carry the engine's version; containerd is the suite's own. */
const PACKAGES = ["docker.io", "docker-cli", "containerd"] as const;

async function fetchEngine(flavour: EngineFlavour, root: string): Promise<void> {
  const suite = flavour.suite;
  if (suite === undefined) throw new Error(`engine ${flavour.id} is the host's; nothing to fetch`);
  if (process.getuid?.() !== 0) {
    throw new Error(`docker ${flavour.id} is not cached in ${root} yet; fetching it (apt-get download, dpkg-deb -x) needs root`);
  }
  await mkdir(ENGINE_CACHE, { recursive: true });
  // Everything happens in a private temp dir and lands by one rename, so concurrent test
  // runs never see half an engine and never share apt's lists or lock.
  const work = await mkdtemp(join(ENGINE_CACHE, `.fetch-${flavour.id}-`));
  try {
    const mirror = hostDebianMirror();
    const lists = join(work, "lists");
    const archives = join(work, "cache");
    const parts = join(work, "sources.list.d");
    for (const dir of [join(lists, "partial"), join(archives, "archives", "partial"), parts, join(work, "debs")]) {
      await mkdir(dir, { recursive: true });
    }
    const sourceList = join(work, "sources.list");
    await writeFile(sourceList, `deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${mirror} ${suite} main\n`);
    const apt = [
      "-o", `Dir::Etc::SourceList=${sourceList}`,
      "-o", `Dir::Etc::SourceParts=${parts}`,
      "-o", `Dir::State::Lists=${lists}`,
      "-o", `Dir::Cache=${archives}`,
      // Candidates come from this suite alone, whatever the host has installed.
      "-o", "Dir::State::status=/dev/null",
      "-o", "APT::Sandbox::User=root",
    ];
    await runChecked(["apt-get", ...apt, "-q", "update"], FETCH_STEP);
    const shown = await runChecked(["apt-cache", ...apt, "show", "--no-all-versions", "docker.io"], FETCH_STEP);
    const version = /^Version: (\S+)$/m.exec(shown.stdout)?.[1];
    if (version === undefined) throw new Error(`apt-cache show docker.io (${suite}) printed no Version:\n${shown.stdout}`);
    if (!version.replace(/^\d+:/, "").startsWith(flavour.versionPrefix)) {
      throw new Error(
        `Debian ${suite} now carries docker.io ${version}, not ${flavour.versionPrefix}x; update ENGINE_FLAVOURS in tests/e2e/support/engine-versions.ts (and the README's "Tested with" table)`,
      );
    }
    const debs = join(work, "debs");
    await runChecked(["apt-get", ...apt, "-q", "download", `docker.io=${version}`, `docker-cli=${version}`, "containerd"], { ...FETCH_STEP, cwd: debs });
    const unpacked = join(work, "root");
    for (const deb of readdirSync(debs).filter((f) => f.endsWith(".deb"))) {
      const pkg = deb.split("_")[0];
      if (!PACKAGES.some((p) => p === pkg)) throw new Error(`unexpected package downloaded: ${deb}`);
      await runChecked(["dpkg-deb", "-x", join(debs, deb), unpacked], FETCH_STEP);
    }
    // docker.io's docker-init points at tini-static, which is not unpacked; without the
    // dangling link dockerd finds the host's docker-init further down PATH.
    const init = join(unpacked, "usr/bin/docker-init");
    if ((await readlink(init).catch(() => undefined)) !== undefined && !existsSync(init)) await unlink(init);
    const reported = await runChecked([join(unpacked, "usr/sbin/dockerd"), "--version"]);
    if (!reported.stdout.includes(flavour.versionPrefix)) {
      throw new Error(`the unpacked dockerd reports "${reported.stdout.trim()}", expected ${flavour.versionPrefix}x`);
    }
    await writeFile(join(unpacked, "VERSION"), `${version}\n`);
    try {
      await rename(unpacked, root);
    } catch (e) {
      // Another run finished first; its copy is as good as ours.
      if (!existsSync(join(root, "VERSION"))) throw e;
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

const FETCH_STEP = { timeoutMs: 600_000, env: { DEBIAN_FRONTEND: "noninteractive" } };

/**
 * The Debian mirror the host's apt already uses for its own release (the network here
 * reaches only that mirror). Reads one-line and deb822 source files.
 */
export function hostDebianMirror(): string {
  const release = /^VERSION_CODENAME=(\S+)$/m.exec(readFileSync("/etc/os-release", "utf8"))?.[1];
  const files = ["/etc/apt/sources.list"];
  if (existsSync("/etc/apt/sources.list.d")) {
    for (const f of readdirSync("/etc/apt/sources.list.d").sort()) files.push(join("/etc/apt/sources.list.d", f));
  }
  for (const file of files) {
    if (!existsSync(file)) continue;
    const text = readFileSync(file, "utf8");
    const found = file.endsWith(".sources") ? mirrorInDeb822(text, release) : mirrorInOneLine(text, release);
    if (found !== undefined) return found.replace(/\/+$/, "");
  }
  throw new Error(
    `no Debian mirror for ${release ?? "this release"} in /etc/apt/sources.list or /etc/apt/sources.list.d; the newer engines are fetched from that mirror`,
  );
}

function mirrorInOneLine(text: string, release: string | undefined): string | undefined {
  for (const line of text.split("\n")) {
    const m = /^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+(.*)$/.exec(line);
    if (m?.[1] !== undefined && m[2] === release && m[3]?.split(/\s+/).includes("main")) return m[1];
  }
  return undefined;
}

function mirrorInDeb822(text: string, release: string | undefined): string | undefined {
  for (const stanza of text.split(/\n\s*\n/)) {
    const field = (name: string): string[] =>
      new RegExp(`^${name}:\\s*(.*)$`, "mi").exec(stanza)?.[1]?.trim().split(/\s+/) ?? [];
    if (!field("Types").includes("deb") || !field("Components").includes("main")) continue;
    if (release === undefined || !field("Suites").includes(release)) continue;
    const [uri] = field("URIs");
    if (uri !== undefined) return uri;
  }
  return undefined;
}
