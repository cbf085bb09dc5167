// The kill-injection proof of kill-injection.test.ts, extended to the quobyte backend:
// the compiled binary serves volumes of the fake Quobyte management API (in this process,
// on loopback, so it survives every kill) and is SIGKILLed at >= 100 random points under a
// concurrent engine-shaped workload, restarted each time. What the clients had
// acknowledged must hold at the end, and the plugin's metadata must agree with the API:
// same UUIDs, no volume twice, no API volume that a Create of its name could not adopt.
// Every kill point is checked as a possible end state. Plus: 30 concurrent Creates of one
// name, a fuzz pass with hostile names and options that must never reach the API, and
// deterministic reproductions of the failure windows the random passes can hit.

import { afterAll, afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CRASH_AT_ENV, type CrashPoint } from "../../src/system/crash-point.ts";
import { DEFAULT_USER, type FakeQuobyte, type FakeQuobyteOptions, type FakeVolume, startFakeQuobyte } from "../support/fake-quobyte.ts";
import { makeTempDir, removeTempDir } from "../support/tmp.ts";
import {
  BINARY,
  type Child,
  Children,
  EngineConn,
  errCode,
  isOk,
  isValidVolumeName,
  must,
  type Outcome,
  Rng,
  sleep,
  suiteSeed,
  waitServing,
} from "./support.ts";
import {
  checkCleanSigterm,
  checkMarkers,
  checkMountCount,
  checkRemoveOfHeldRefused,
  checkWholeOrGone,
  runUnderKills,
  show,
  unmountAndRemoveAll,
  Workload,
} from "./workload.ts";

const SEED = suiteSeed("quobyte-kill-injection", 0x5eed_0b01);
const KILLS = 110;
const CLIENTS = 4;
const SAME_NAME_CONNS = 30;
const FUZZ_WORKERS = 4;
const FUZZ_PER_WORKER = 1000; // 4,000 requests
const TENANT = "My Tenant";

const children = new Children();
let dir = "";
let fake: FakeQuobyte | undefined;
let layout: QuobyteLayout;

interface QuobyteLayout {
  /** The directory the fake materialises volumes in: the host's "Quobyte mount". */
  mnt: string;
  state: string;
  /** <state>/quobyte-volumes: one metadata file per volume. */
  meta: string;
  socket: string;
  envFile: string;
  cwd: string;
}

beforeEach(async () => {
  dir = await makeTempDir("dqp-qkill-");
  layout = {
    mnt: `${dir}/mnt`,
    state: `${dir}/state`,
    meta: `${dir}/state/quobyte-volumes`,
    socket: `${dir}/p.sock`,
    envFile: `${dir}/docker-quobyte.env`,
    cwd: `${dir}/cwd`,
  };
  mkdirSync(layout.mnt);
  mkdirSync(layout.cwd);
});
afterEach(async () => {
  await children.stopAll();
  await fake?.stop();
  fake = undefined;
  await removeTempDir(dir);
});
afterAll(async () => {
  await children.stopAll();
  await fake?.stop();
});

/** Starts the fake API over the layout's mount tree and writes the operator's env file. */
async function startFake(options: FakeQuobyteOptions = {}): Promise<FakeQuobyte> {
  const started = await startFakeQuobyte({ mountTree: layout.mnt, ...options });
  fake = started;
  writeFileSync(
    layout.envFile,
    [
      `QUOBYTE_API_URL=${started.url}`,
      `QUOBYTE_API_USER=${DEFAULT_USER.name}`,
      `QUOBYTE_API_PASSWORD=${DEFAULT_USER.password}`,
      `QUOBYTE_TENANT_ID=${TENANT}`,
      `QUOBYTE_MOUNT_PATH=${layout.mnt}`,
    ].join("\n"),
    { mode: 0o600 },
  );
  return started;
}

/** This process's environment without anything that would override the env file. */
function childEnv(): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith("QUOBYTE_") || key === "SOCKET_GROUP") delete env[key];
  return env;
}

/** `crashAt` arms a test-only crash point (src/system/crash-point.ts). */
async function startServing(crashAt?: CrashPoint): Promise<{ child: Child; ms: number }> {
  const argv = [
    BINARY,
    "serve",
    "--env-file",
    layout.envFile,
    "--mount-check",
    "none",
    "--state-dir",
    layout.state,
    "--socket",
    layout.socket,
    "--create-wait",
    "5",
    "--log-level",
    "warn",
    "--log-format",
    "json",
  ];
  const env = crashAt === undefined ? childEnv() : { ...childEnv(), [CRASH_AT_ENV]: crashAt };
  const child = children.spawn(argv, { cwd: layout.cwd, env });
  const ms = await waitServing(children, child, layout.socket);
  return { child, ms };
}

// ---------------------------------------------------------------------------------------
// Inspection of the plugin's metadata and of the API

interface MetaFile {
  kind: "file" | "symlink" | "other";
  mode: number;
  raw: string;
  uuid?: unknown;
  tenantId?: unknown;
  options?: unknown;
  /** The whole parsed file ({} when it is not JSON). */
  json: Record<string, unknown>;
}

/**
 * Metadata that says its volume is being removed (`"state": "removing"`, the posix
 * backend's convention): its API volume may already be gone.
 */
function markedRemoving(file: MetaFile | undefined): boolean {
  return file?.json.state === "removing" || file?.json.removing === true;
}

/** The metadata directory: files by volume name, and dotted leftovers (temporary files). */
function readMetadata(metaDir: string): { files: Map<string, MetaFile>; temp: string[] } {
  const files = new Map<string, MetaFile>();
  const temp: string[] = [];
  if (!existsSync(metaDir)) return { files, temp };
  for (const name of readdirSync(metaDir)) {
    if (name.startsWith(".")) {
      temp.push(name);
      continue;
    }
    const path = join(metaDir, name);
    const info = lstatSync(path);
    if (!info.isFile()) {
      files.set(name, { kind: info.isSymbolicLink() ? "symlink" : "other", mode: info.mode & 0o7777, raw: "", json: {} });
      continue;
    }
    const raw = readFileSync(path, "utf8");
    let parsed: Record<string, unknown> = {};
    try {
      const value: unknown = JSON.parse(raw);
      if (typeof value === "object" && value !== null && !Array.isArray(value)) parsed = value as Record<string, unknown>;
    } catch {
      // reported by the caller through the missing uuid
    }
    files.set(name, { kind: "file", mode: info.mode & 0o7777, raw, uuid: parsed.uuid, tenantId: parsed.tenantId, options: parsed.options, json: parsed });
  }
  return { files, temp };
}

/** Names held by more than one API volume (whatever the tenant). */
function duplicateApiNames(volumes: FakeVolume[]): string[] {
  const seen = new Map<string, string[]>();
  for (const v of volumes) seen.set(v.name, [...(seen.get(v.name) ?? []), v.uuid]);
  return [...seen.entries()].filter(([, uuids]) => uuids.length > 1).map(([name, uuids]) => `${name}: ${uuids.join(", ")}`);
}

/** API methods in `fake.log` from index `from` on, by count. */
function apiMethods(log: FakeQuobyte["log"], from = 0): Map<string, number> {
  const counts = new Map<string, number>();
  for (const entry of log.slice(from)) {
    const method = entry.method ?? `<${entry.httpMethod} ${entry.status}>`;
    counts.set(method, (counts.get(method) ?? 0) + 1);
  }
  return counts;
}

// ---------------------------------------------------------------------------------------
// The workload (see workload.ts)

/** Creates with and without a quota (`size`), as the engine passes `-o` options. */
const CREATE_OPTS: readonly (Record<string, string> | null)[] = [
  null,
  {},
  { size: "1G" },
  { size: "512M", mode: "0750" },
  { size: "1.5T" },
  { user: "nobody", group: "nogroup" },
  { on_remove: "erase", size: "10G" },
];

// ---------------------------------------------------------------------------------------

describe("quobyte backend: SIGKILL at random points under a concurrent engine workload", () => {
  test(
    `${KILLS} kills: nothing acknowledged is lost, metadata agrees with the API, mounts are counted, everything is removable`,
    async () => {
      const api = await startFake({ mountDelayMs: 15 });
      const tenantId = api.tenants.find((t) => t.name === TENANT)!.id;
      const rng = new Rng(SEED);
      const names = ["qv-a", "qv-b", "qv-c", "qv-ü-d", "keep-1", "keep-2"];
      const work = new Workload({
        names,
        dataRoot: layout.mnt,
        socket: layout.socket,
        weights: { create: 24, remove: 22, mount: 22, unmount: 20, get: 6, list: 6 },
        createOpts: CREATE_OPTS,
        uuidPattern: /[0-9a-f]{8}-[0-9a-f-]{27}/g,
      });
      const problems: string[] = [];
      const metaWithoutApiVolume: string[] = [];

      const { restartMs, staleReplaced } = await runUnderKills({
        work,
        rng,
        clients: CLIENTS,
        kills: KILLS,
        children,
        socket: layout.socket,
        child: (await startServing()).child,
        startServing,
        // Every kill point is a possible end state. The API enforces unique names per
        // tenant; the plugin must never get around it. Metadata is written after the API
        // volume exists and must go before it does: a file naming a volume the API lacks
        // is a volume that List shows, Create takes as existing and Mount cannot reach.
        afterKill: (k) => {
          const atKill = api.volumes();
          for (const dup of duplicateApiNames(atKill)) problems.push(`after kill ${k}: two API volumes of one name: ${dup}`);
          for (const [name, file] of readMetadata(layout.meta).files) {
            if (atKill.some((v) => v.uuid === file.uuid) || markedRemoving(file)) continue;
            metaWithoutApiVolume.push(`after kill ${k}: ${name} (${String(file.uuid).slice(0, 8)})`);
          }
        },
      });
      const apiCallsDuringRun = apiMethods(api.log);
      const adoptedDuringRun = api.log.filter((e) => e.method === "createVolume" && e.response.includes("ENTITY_EXISTS_ALREADY")).length;

      // A clean restart, then the whole model.
      const { child } = await startServing();
      const conn = new EngineConn(layout.socket);
      problems.push(...work.violations, ...work.removesWhileHeld());
      if (metaWithoutApiVolume.length > 0) {
        problems.push(
          `metadata named a volume the API no longer held at ${metaWithoutApiVolume.length} kill point(s) (a Remove killed between deleteVolume and deleting the metadata): ${metaWithoutApiVolume.slice(0, 8).join("; ")}`,
        );
      }

      const listed: string[] = (await must(conn, "VolumeDriver.List", {})).json.Volumes.map((v: { Name: string }) => v.Name);
      if (new Set(listed).size !== listed.length) problems.push(`List has duplicates: ${JSON.stringify(listed)}`);

      // List <-> metadata files.
      const meta = readMetadata(layout.meta);
      if (meta.temp.length > 0) problems.push(`temporary files left in the metadata dir after a clean start: ${meta.temp.join(", ")}`);
      const metaNames = [...meta.files.keys()].sort();
      if (JSON.stringify(metaNames) !== JSON.stringify([...listed].sort())) {
        problems.push(`List ${JSON.stringify(listed)} differs from metadata files ${JSON.stringify(metaNames)}`);
      }
      for (const [name, file] of meta.files) {
        if (file.kind !== "file") problems.push(`metadata of ${name} is a ${file.kind}`);
        if (file.mode !== 0o600) problems.push(`metadata of ${name} has mode ${file.mode.toString(8)}`);
        if (typeof file.uuid !== "string") problems.push(`metadata of ${name} has no uuid: ${file.raw.slice(0, 200)}`);
        if (file.tenantId !== tenantId) problems.push(`metadata of ${name} has tenantId ${JSON.stringify(file.tenantId)}, not ${tenantId}`);
      }

      // Metadata <-> API: every listed volume is the API volume its metadata names.
      const before = api.volumes();
      for (const dup of duplicateApiNames(before)) problems.push(`two API volumes of one name: ${dup}`);
      for (const name of listed) {
        const uuid = meta.files.get(name)?.uuid;
        const inApi = before.filter((v) => v.name === name);
        // A removal in progress may be listed (as the posix backend does); Remove below must finish it.
        if (!inApi.some((v) => v.uuid === uuid) && !markedRemoving(meta.files.get(name))) {
          problems.push(
            `listed volume ${name} has metadata uuid ${String(uuid)} but the API holds ${JSON.stringify(inApi.map((v) => v.uuid))} ` +
              `(interrupted Removes of it: ${work.interrupted("remove", name)}, interrupted Creates: ${work.interrupted("create", name)})`,
          );
        }
      }
      // API volumes the plugin does not list: only Creates cut off by a kill may leave them.
      const orphans = before.filter((v) => !listed.includes(v.name));
      for (const v of orphans) {
        if (work.interrupted("create", v.name) === 0) problems.push(`API volume ${v.name} (${v.uuid}) is not listed and no interrupted Create explains it`);
      }

      // The model: acknowledged volumes exist, acknowledged removals stay removed.
      for (const name of names) {
        const inList = listed.includes(name);
        if (work.mustExist(name) && !inList) problems.push(`acknowledged volume ${name} lost (not listed)`);
        if (work.mustExist(name) && !before.some((v) => v.name === name)) problems.push(`acknowledged volume ${name} lost in the API`);
        if (work.mustNotExist(name) && inList) problems.push(`volume ${name} is listed although its removal was acknowledged last`);
        const got = await checkMountCount(conn, work, name, inList, problems);
        if (!got) continue;
        if (got.json.Volume?.Status?.uuid !== meta.files.get(name)?.uuid) problems.push(`Get ${name}: Status.uuid ${got.json.Volume?.Status?.uuid} differs from its metadata`);
      }
      await checkMarkers(work, problems);

      // Idempotent Create adopts what an interrupted Create left in the API: same UUID, no second volume.
      for (const v of orphans) {
        const out = await must(conn, "VolumeDriver.Create", { Name: v.name, Opts: null });
        if (!isOk(out as Outcome)) {
          problems.push(`Create adopting API volume ${v.name}: ${out.text}`);
          continue;
        }
        const adopted = readMetadata(layout.meta).files.get(v.name);
        const now = api.volumes().filter((x) => x.name === v.name);
        if (adopted?.uuid !== v.uuid || now.length !== 1 || now[0]?.uuid !== v.uuid) {
          problems.push(`Create of ${v.name} did not adopt ${v.uuid}: metadata ${String(adopted?.uuid)}, API ${JSON.stringify(now.map((x) => x.uuid))}`);
        }
      }
      const all: string[] = (await must(conn, "VolumeDriver.List", {})).json.Volumes.map((v: { Name: string }) => v.Name);

      // Remove of a volume still held is refused, and the API volume stays.
      const heldChecked = await checkRemoveOfHeldRefused(conn, work, all, layout.mnt, problems, (name) => {
        if (!api.volumes().some((v) => v.name === name)) problems.push(`Remove of held ${name} deleted its API volume`);
      });

      // Unmount everything the workload may hold, then everything is removable.
      await unmountAndRemoveAll(conn, work, all, problems);
      const after = (await must(conn, "VolumeDriver.List", {})).json.Volumes;
      if (after.length !== 0) problems.push(`volumes listed after removing all: ${JSON.stringify(after)}`);
      conn.close();
      const apiLeft = api.volumes();
      if (apiLeft.length !== 0) problems.push(`API volumes left after removing all: ${JSON.stringify(apiLeft.map((v) => `${v.name} ${v.uuid}`))}`);
      const treeLeft = readdirSync(layout.mnt);
      if (treeLeft.length !== 0) problems.push(`mount tree holds ${JSON.stringify(treeLeft)}`);
      const metaLeft = readMetadata(layout.meta);
      if (metaLeft.files.size !== 0 || metaLeft.temp.length !== 0) problems.push(`metadata left: ${[...metaLeft.files.keys(), ...metaLeft.temp]}`);

      await checkCleanSigterm(children, child, layout, problems);

      restartMs.sort((a, b) => a - b);
      const surviving = work.markersThatMustSurvive();
      console.log(
        `[quobyte-kill-injection] seed ${SEED}: ${KILLS} SIGKILLs (stale socket replaced ${staleReplaced}x), restart to serving p50 ${restartMs[restartMs.length >> 1]?.toFixed(0)} ms max ${restartMs.at(-1)?.toFixed(0)} ms; ` +
          `${work.ops.length} requests sent (${work.unsent} refused at connect), ${work.pairs.length} mount IDs, ${work.markers.length} files written, ${surviving.length} had to survive; ` +
          `names that had to exist at the end: ${names.filter((n) => work.mustExist(n)).join(",") || "-"}; listed at the end: ${listed.join(",") || "-"}; ` +
          `API volumes left unlisted by interrupted Creates and adopted: ${orphans.length} (${orphans.map((v) => v.name).join(",")}); Creates adopting an existing API volume during the run: ${adoptedDuringRun}; ` +
          `Remove refused for ${heldChecked} held volume(s); kill points with metadata naming a volume the API lacks: ${metaWithoutApiVolume.length}\n  API calls during the run: ${show(apiCallsDuringRun)}\n  outcomes: ${work.summary()}`,
      );
      expect(staleReplaced).toBe(KILLS);
      expect(problems).toEqual([]);
    },
    240_000,
  );
});

describe("quobyte backend: concurrency without kills", () => {
  test(`${SAME_NAME_CONNS} concurrent Creates of one name from ${SAME_NAME_CONNS} connections: all succeed, exactly one API volume`, async () => {
    const api = await startFake({ mountDelayMs: 30 });
    const tenantId = api.tenants.find((t) => t.name === TENANT)!.id;
    const rng = new Rng(SEED ^ 0x30);
    await startServing();
    const conns = Array.from({ length: SAME_NAME_CONNS }, () => new EngineConn(layout.socket));
    // The API already holds one name, as an interrupted Create (or another host) leaves it.
    const seeded = api.addVolume({ name: "same-seeded", tenantId });
    const choices = [null, {}, { size: "1G" }, { size: "2G", mode: "0750" }, { mode: "0700" }, { user: "nobody" }];
    try {
      // Open all connections first, so that the Creates really arrive together.
      await Promise.all(conns.map((c) => must(c, "Plugin.Activate")));
      for (const name of ["same-0", "same-1", "same-2", "same-seeded"]) {
        const logFrom = api.log.length;
        const options = conns.map(() => rng.pick(choices));
        const replies = await Promise.all(conns.map((c, i) => must(c, "VolumeDriver.Create", { Name: name, Opts: options[i] })));
        expect(replies.filter((r) => !isOk(r as Outcome)).map((r) => r.text)).toEqual([]);
        const inApi = api.volumes().filter((v) => v.name === name);
        expect(inApi.length).toBe(1);
        if (name === "same-seeded") expect(inApi[0]!.uuid).toBe(seeded.uuid);
        const creates = api.log.slice(logFrom).filter((e) => e.method === "createVolume");
        expect(creates.length).toBe(1);
        const stored = readMetadata(layout.meta).files.get(name);
        expect(stored?.uuid).toBe(inApi[0]!.uuid);
        expect(stored?.mode).toBe(0o600);
        // One Create won; the options stored are one of those sent, and its quota is the API's.
        expect(options.map((o) => JSON.stringify(o ?? {}))).toContain(JSON.stringify(stored?.options));
        const size = (stored?.options as { size?: string }).size;
        expect(inApi[0]!.quotaBytes).toBe(size === undefined ? undefined : Number.parseFloat(size) * 2 ** 30);
        const listed = (await must(conns[0]!, "VolumeDriver.List", {})).json.Volumes.map((v: { Name: string }) => v.Name);
        expect(listed.filter((n: string) => n === name)).toEqual([name]);
      }
      expect(readMetadata(layout.meta).temp).toEqual([]);
      expect(duplicateApiNames(api.volumes())).toEqual([]);
      expect(readdirSync(layout.mnt).sort()).toEqual(["same-0", "same-1", "same-2", "same-seeded"]);
      console.log(`[quobyte-kill-injection] ${SAME_NAME_CONNS} concurrent Creates x 4 names: API calls ${show(apiMethods(api.log))}`);
    } finally {
      for (const c of conns) c.close();
    }
  }, 30_000);
});

// ---------------------------------------------------------------------------------------
// Fuzz: hostile names and options

/** Lets requests run together, except those whose API traffic must be observed alone. */
class Gate {
  private shared = 0;
  private exclusive = false;
  private waitingExclusive = 0;
  private waiters: (() => void)[] = [];

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  private wait(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  async runShared<T>(task: () => Promise<T>): Promise<T> {
    while (this.exclusive || this.waitingExclusive > 0) await this.wait();
    this.shared++;
    try {
      return await task();
    } finally {
      this.shared--;
      this.notify();
    }
  }

  async runExclusive<T>(task: () => Promise<T>): Promise<T> {
    this.waitingExclusive++;
    while (this.exclusive || this.shared > 0) await this.wait();
    this.waitingExclusive--;
    this.exclusive = true;
    try {
      return await task();
    } finally {
      this.exclusive = false;
      this.notify();
    }
  }
}

/** Valid, if odd, names: they may reach the API. */
const FUZZ_NAMES = [
  "fz-a",
  "fz-b",
  "fz-c",
  "fz ü 日本",
  "fz%2e%2e%2f",
  "fz..",
  "fz\\..\\..\\x",
  "fz$(touch pwned)",
  "__proto__",
  "constructor",
  `fz-${"€".repeat(84)}`, // 255 bytes
];

/** Names the plugin must refuse before doing anything. */
const BAD_NAMES: unknown[] = [
  // The Quobyte client's fixed-user syntax: a name must not alias <user>#<group>@<volume>.
  "fz@vol",
  "nobody#nogroup@fz-a",
  "",
  ".",
  "..",
  "../fz-x",
  "../../../../tmp/fz-escape",
  "/fz-abs",
  "/tmp/fz-abs",
  "fz/../../x",
  "fz/sub",
  "fz\u0000nul",
  "fz\nnl",
  "fz\u007fdel",
  ".fz-hidden",
  ".tmp-1-fz",
  `fz-x${"€".repeat(84)}`, // 256 bytes
  "f".repeat(256),
  "z".repeat(100_000),
  0,
  null,
  true,
  ["fz-a"],
  { Name: "fz-a" },
];

/** Options that parse: may reach the API. `configuration_name` NoSuch is refused by the API itself. */
function validOptions(rng: Rng, tenantId: string): Record<string, string> | null {
  return rng.pick<Record<string, string> | null>([
    null,
    {},
    { size: "1G" },
    { size: " 10G " },
    { size: "1.5T", mode: "0750" },
    { size: "4096" },
    { size: "10GiB" },
    { size: "7P" },
    { size: "0.5K" },
    { user: "nobody", group: "nogroup", mode: "2770" },
    { tenant_id: TENANT },
    { tenant_id: tenantId },
    { tenant_id: "Other Tenant", size: "1G" },
    { fixed_user: "nobody" },
    { fixed_user: "nobody", fixed_group: "nogroup" },
    { fixed_group: "users" },
    { on_remove: "erase" },
    { on_remove: "keep" },
    { on_remove: "delete", size: "2G" },
    { configuration_name: "BASE" },
    { configuration_name: "NoSuchConfig" },
    { user: "ü-user 日本", group: "g r p" },
  ]);
}

const HUGE = "9".repeat(100_000);

/** Options the plugin must refuse before any API call. */
const BAD_OPTIONS: unknown[] = [
  { size: "" },
  { size: " " },
  { size: "-1" },
  { size: "0" },
  { size: "0.0001" },
  { size: "1e9" },
  { size: "NaN" },
  { size: "Infinity" },
  { size: "10X" },
  { size: "10GG" },
  { size: "1.5.5G" },
  { size: "0x10" },
  { size: "8P" },
  { size: "9999999999P" },
  { size: HUGE },
  { size: "10G; rm -rf /" },
  { size: "１０G" },
  { size: 10 },
  { size: null },
  { size: ["1G"] },
  { tenant_id: "" },
  { tenant_id: "a/b" },
  { tenant_id: "x#y" },
  { tenant_id: "@tenant" },
  { tenant_id: "../My Tenant" },
  { tenant_id: "t\u0000" },
  { tenant_id: "t".repeat(256) },
  { fixed_user: "a#b" },
  { fixed_user: "a@b" },
  { fixed_user: "a/b" },
  { fixed_user: "../root" },
  { fixed_user: "" },
  { fixed_user: "root\n" },
  { fixed_user: "u".repeat(100_000) },
  { fixed_group: "g@fz-a" },
  { fixed_group: "#g" },
  { fixed_user: "nobody", fixed_group: "a/b" },
  { user: "a/b" },
  { user: "root@fz-a" },
  { group: "x#y" },
  { mode: "0x1ff" },
  { mode: "8" },
  { mode: "17777" },
  { mode: "-1" },
  { mode: "" },
  { on_remove: "Delete" },
  { on_remove: "rm -rf" },
  { on_remove: "" },
  { configuration_name: "a/b" },
  { configuration_name: "" },
  { Size: "1G" },
  { "size ": "1G" },
  { tenant: TENANT },
  { volume_uuid: "x" },
  { "../size": "1G" },
  JSON.parse('{"__proto__":"1G"}'),
  { size: "1G", extra: "x" },
  "size=1G",
  ["size", "1G"],
  42,
  { size: "1G", tenant_id: "x/y" },
];

type FuzzClass = "valid" | "badName" | "badOption" | "unknownTenant";

type FuzzEndpoint =
  | "Plugin.Activate"
  | "VolumeDriver.Create"
  | "VolumeDriver.Remove"
  | "VolumeDriver.Mount"
  | "VolumeDriver.Unmount"
  | "VolumeDriver.Path"
  | "VolumeDriver.Get"
  | "VolumeDriver.List"
  | "VolumeDriver.Capabilities";

/** One directory entry (any length): no "/", no control characters, no leading ".". */
function isSingleEntry(entry: string): boolean {
  return entry.length > 0 && !entry.includes("/") && !/[\u0000-\u001f\u007f]/.test(entry) && !entry.startsWith(".");
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Why the reply is neither the endpoint's success shape nor {"Err": non-empty}, or undefined. */
function judge(endpoint: FuzzEndpoint, out: Outcome, mnt: string): string | undefined {
  if (out.kind !== "reply") return `${out.kind}: ${out.error}`;
  const body = out.json;
  if (!isObject(body)) return `body is not a JSON object: ${out.text.slice(0, 200)}`;
  if ("Err" in body) {
    if (Object.keys(body).length !== 1) return `Err with other keys: ${out.text.slice(0, 200)}`;
    if (typeof body.Err !== "string" || body.Err.length === 0) return `bad Err ${JSON.stringify(body.Err)}`;
    return out.status >= 400 ? undefined : `Err with status ${out.status}`;
  }
  if (out.status !== 200) return `status ${out.status} without Err`;
  // One entry directly under the mount: <mnt>/<name> or <mnt>/<user>#<group>@<name>
  // (which may exceed NAME_MAX: counted apart, see overlongEntries).
  const mountpointOk = (mp: unknown) => typeof mp === "string" && mp.startsWith(`${mnt}/`) && isSingleEntry(mp.slice(mnt.length + 1));
  const keys = Object.keys(body).sort().join(",");
  switch (endpoint) {
    case "Plugin.Activate":
      return JSON.stringify(body) === '{"Implements":["VolumeDriver"]}' ? undefined : `Activate answered ${out.text}`;
    case "VolumeDriver.Create":
    case "VolumeDriver.Remove":
    case "VolumeDriver.Unmount":
      return keys === "" ? undefined : `${endpoint} answered ${out.text.slice(0, 200)}`;
    case "VolumeDriver.Mount":
    case "VolumeDriver.Path":
      return keys === "Mountpoint" && mountpointOk(body.Mountpoint) ? undefined : `${endpoint} answered ${out.text.slice(0, 300)}`;
    case "VolumeDriver.Get": {
      const v = body.Volume;
      if (keys !== "Volume" || !isObject(v) || typeof v.Name !== "string" || !mountpointOk(v.Mountpoint) || !isObject(v.Status)) {
        return `Get answered ${out.text.slice(0, 300)}`;
      }
      return undefined;
    }
    case "VolumeDriver.List": {
      if (keys !== "Volumes" || !Array.isArray(body.Volumes)) return `List answered ${out.text.slice(0, 300)}`;
      const names = new Set<string>();
      for (const v of body.Volumes as unknown[]) {
        if (!isObject(v) || typeof v.Name !== "string" || !isValidVolumeName(v.Name) || !mountpointOk(v.Mountpoint)) return `List entry ${JSON.stringify(v).slice(0, 300)}`;
        if (names.has(v.Name)) return `List has ${JSON.stringify(v.Name)} twice`;
        names.add(v.Name);
      }
      return undefined;
    }
    case "VolumeDriver.Capabilities":
      return JSON.stringify(body) === '{"Capabilities":{"Scope":"global"}}' ? undefined : `Capabilities answered ${out.text}`;
  }
}

function describeOutcome(out: Outcome): string {
  return out.kind === "reply" ? out.text : `${out.kind}: ${out.error}`;
}

/** API methods that only read: a Create naming an unknown tenant may use them to find out. */
const TENANT_LOOKUPS = new Set(["resolveTenantName", "getTenant"]);

describe("quobyte backend: fuzz with hostile names and options", () => {
  test(`${FUZZ_WORKERS * FUZZ_PER_WORKER} requests: the process survives, every answer has a valid shape, nothing invalid reaches the API`, async () => {
    const tenantId = crypto.randomUUID();
    const api = await startFake({
      tenants: [
        { id: tenantId, name: TENANT },
        { id: crypto.randomUUID(), name: "Other Tenant" },
      ],
    });
    const { child } = await startServing();
    const rng = new Rng(SEED ^ 0xf022);
    const gate = new Gate();
    const problems: string[] = [];
    const classes = new Map<string, number>();
    const codes = new Map<string, number>();
    /** Acknowledged mounts still held, for the cleanup. */
    const held: { name: string; id: string }[] = [];
    let sent = 0;
    let exclusiveChecked = 0;
    let unknownTenantOk = 0;
    /** Mountpoint entries longer than NAME_MAX (fixed-user prefix on a long name): observed, not asserted. */
    const overlong = new Set<string>();

    const note = (what: string, req: unknown, detail: string) => {
      if (problems.length < 50) problems.push(`${what}: ${JSON.stringify(req).slice(0, 300)}: ${detail.slice(0, 400)}`);
    };

    async function worker(w: number): Promise<void> {
      const r = rng.fork(w);
      const conn = new EngineConn(layout.socket, 20_000);
      try {
        for (let i = 0; i < FUZZ_PER_WORKER; i++) {
          const cls = r.weighted<FuzzClass>({ valid: 55, badName: 20, badOption: 20, unknownTenant: 5 });
          classes.set(cls, (classes.get(cls) ?? 0) + 1);
          let endpoint: FuzzEndpoint;
          let body: Record<string, unknown> = {};
          if (cls === "valid") {
            endpoint = r.weighted<FuzzEndpoint>({
              "VolumeDriver.Create": 30,
              "VolumeDriver.Mount": 15,
              "VolumeDriver.Unmount": 10,
              "VolumeDriver.Remove": 15,
              "VolumeDriver.Get": 10,
              "VolumeDriver.Path": 5,
              "VolumeDriver.List": 6,
              "VolumeDriver.Capabilities": 2,
              "Plugin.Activate": 2,
            });
            const name = r.pick(FUZZ_NAMES);
            if (endpoint === "VolumeDriver.Create") body = { Name: name, Opts: validOptions(r, tenantId) };
            else if (endpoint === "VolumeDriver.Mount") body = { Name: name, ID: r.hex(64) };
            else if (endpoint === "VolumeDriver.Unmount") {
              const mine = held.length > 0 && r.chance(0.8) ? held.splice(r.int(0, held.length - 1), 1)[0]! : { name, id: r.hex(64) };
              body = { Name: mine.name, ID: mine.id };
            } else if (endpoint !== "VolumeDriver.List" && endpoint !== "VolumeDriver.Capabilities" && endpoint !== "Plugin.Activate") body = { Name: name };
          } else if (cls === "badName") {
            endpoint = r.pick(["VolumeDriver.Create", "VolumeDriver.Remove", "VolumeDriver.Mount", "VolumeDriver.Unmount", "VolumeDriver.Get", "VolumeDriver.Path"] as const);
            body = { Name: r.pick(BAD_NAMES) };
            if (endpoint === "VolumeDriver.Create") body.Opts = r.chance(0.5) ? validOptions(r, tenantId) : r.pick(BAD_OPTIONS);
            if (endpoint === "VolumeDriver.Mount" || endpoint === "VolumeDriver.Unmount") body.ID = r.hex(64);
          } else if (cls === "badOption") {
            endpoint = "VolumeDriver.Create";
            body = { Name: r.pick(FUZZ_NAMES), Opts: r.pick(BAD_OPTIONS) };
          } else {
            endpoint = "VolumeDriver.Create";
            const unknown = r.pick(["No Such Tenant", crypto.randomUUID(), "00000000-0000-0000-0000-000000000000", "my tenant", `${TENANT} `.padEnd(200, "x"), tenantId.toUpperCase().replace(/^./, (c) => (c === "F" ? "0" : "F"))]);
            // A fresh name must be refused; an existing one is a no-op Create.
            body = { Name: r.chance(0.6) ? `fz-t${w}-${i}` : r.pick(FUZZ_NAMES), Opts: r.chance(0.5) ? { tenant_id: unknown } : { tenant_id: unknown, size: "1G", fixed_user: "nobody" } };
          }
          const payload = endpoint === "Plugin.Activate" ? undefined : body;

          const send = async (): Promise<{ out: Outcome; added: FakeQuobyte["log"]; hadMeta: boolean }> => {
            const from = api.log.length;
            const hadMeta = typeof body.Name === "string" && isValidVolumeName(body.Name) && existsSync(join(layout.meta, body.Name));
            const out = await conn.call(endpoint, payload);
            return { out, added: api.log.slice(from), hadMeta };
          };
          const { out, added, hadMeta } = cls === "valid" ? await gate.runShared(send) : await gate.runExclusive(send);
          sent++;
          const why = judge(endpoint, out, layout.mnt);
          if (why) note(`bad answer to ${endpoint}`, body, why);
          if (child.exitCode !== null || child.signalCode !== null) {
            note("plugin exited", body, `${child.exitCode ?? child.signalCode}: ${children.log(child).slice(-2000)}`);
            return;
          }
          if (isOk(out) && (endpoint === "VolumeDriver.Mount" || endpoint === "VolumeDriver.Path")) {
            const mp = (out.json as { Mountpoint?: unknown }).Mountpoint;
            if (typeof mp === "string" && Buffer.byteLength(mp.slice(layout.mnt.length + 1)) > 255) overlong.add(mp.slice(layout.mnt.length + 1));
          }
          const code = errCode(out.kind === "reply" ? out.json : undefined) ?? (isOk(out) ? "ok" : out.kind);
          codes.set(`${cls}:${code}`, (codes.get(`${cls}:${code}`) ?? 0) + 1);

          if (cls === "valid") {
            if (endpoint === "VolumeDriver.Mount" && isOk(out)) held.push({ name: String(body.Name), id: String(body.ID) });
            const explained =
              code === "ok" ||
              code === "VOLUME_NOT_FOUND" ||
              code === "VOLUME_IN_USE" ||
              code === "NOT_MOUNTED" ||
              (code === "BACKEND_FAILED" && JSON.stringify(body).includes("NoSuchConfig")) ||
              // <user>#<group>@<name> must fit one directory entry (255 bytes).
              (code === "INVALID_OPTION" && Buffer.byteLength(String(body.Name)) > 240 && /fixed_(user|group)/.test(JSON.stringify(body.Opts)));
            if (!explained) note(`valid request refused with ${code}`, body, describeOutcome(out));
            continue;
          }
          exclusiveChecked++;
          // Background refreshes of quota and usage (getVolumeList) may land in any window.
          const calls = added.map((e) => e.method ?? `<${e.httpMethod}>`).filter((m) => m !== "getVolumeList");
          if (cls === "unknownTenant") {
            if (isOk(out)) {
              // Creating an existing volume changes nothing, whatever its options say.
              unknownTenantOk++;
              if (!hadMeta) note("Create naming an unknown tenant succeeded", body, out.text);
            } else if (code !== "INVALID_OPTION") note(`Create naming an unknown tenant answered ${code}`, body, describeOutcome(out));
            const writes = calls.filter((m) => !TENANT_LOOKUPS.has(m));
            if (writes.length > 0) note("Create naming an unknown tenant called the API", body, writes.join(","));
          } else {
            const expected = cls === "badName" ? ["INVALID_NAME", "INVALID_REQUEST"] : ["INVALID_OPTION"];
            if (!expected.includes(code)) note(`${cls} answered ${code}, not ${expected.join("/")}`, body, describeOutcome(out));
            if (calls.length > 0) note(`${cls} reached the API`, body, calls.join(","));
          }
        }
      } finally {
        conn.close();
      }
    }

    const started = performance.now();
    await Promise.all(Array.from({ length: FUZZ_WORKERS }, (_, w) => worker(w)));
    const fuzzMs = performance.now() - started;
    const apiCalls = apiMethods(api.log);

    // Still the same process, still serving.
    expect(child.exitCode).toBeNull();
    expect(child.signalCode).toBeNull();
    const conn = new EngineConn(layout.socket);
    expect(isOk(await conn.call("Plugin.Activate"))).toBe(true);

    // Nothing that fails validation was ever sent to the API.
    for (const entry of api.log) {
      if (entry.method === "createVolume") {
        const name = entry.params?.name;
        if (typeof name !== "string" || !isValidVolumeName(name)) problems.push(`createVolume with name ${JSON.stringify(name).slice(0, 100)}`);
      }
      if (entry.method === "setQuota" && !/"value":\d+[,}]/.test(entry.rawBody)) problems.push(`setQuota with ${entry.rawBody.slice(0, 300)}`);
    }

    // Metadata <-> API <-> mount tree.
    const volumes = api.volumes();
    const listed: { Name: string; Mountpoint: string }[] = (await must(conn, "VolumeDriver.List", {})).json.Volumes;
    const meta = readMetadata(layout.meta);
    if (JSON.stringify([...meta.files.keys()].sort()) !== JSON.stringify(listed.map((v) => v.Name).sort())) {
      problems.push(`List ${JSON.stringify(listed.map((v) => v.Name))} differs from metadata ${JSON.stringify([...meta.files.keys()])}`);
    }
    for (const [name, file] of meta.files) {
      const v = volumes.find((x) => x.uuid === file.uuid);
      if (!v || v.name !== name || v.tenantId !== file.tenantId) problems.push(`metadata of ${name} (${String(file.uuid)}) names no such API volume`);
      if (file.mode !== 0o600) problems.push(`metadata of ${name} has mode ${file.mode.toString(8)}`);
    }
    const apiNames = new Set(volumes.map((v) => v.name));
    const strays = (tree: string) =>
      readdirSync(tree).filter((entry) => !apiNames.has(entry) || !lstatSync(join(tree, entry)).isDirectory());
    problems.push(...strays(layout.mnt).map((entry) => `mount tree holds ${JSON.stringify(entry)}, which is no API volume`));

    // Distinct volumes sharing one Mountpoint (a name that reads as <user>#<group>@<other
    // volume>): observed here, asserted in its own test below.
    const byMountpoint = new Map<string, string[]>();
    for (const { Name } of listed) {
      const mp = String((await must(conn, "VolumeDriver.Get", { Name })).json.Volume?.Mountpoint);
      byMountpoint.set(mp, [...(byMountpoint.get(mp) ?? []), Name]);
    }
    const aliases = [...byMountpoint.entries()].filter(([, n]) => n.length > 1).map(([mp, n]) => `${n.map((x) => JSON.stringify(x)).join(" and ")} -> ${mp.slice(layout.mnt.length + 1)}`);

    // Cleanup through the protocol: unmount what is held, remove what is listed.
    for (const m of held) {
      const out = await must(conn, "VolumeDriver.Unmount", { Name: m.name, ID: m.id });
      if (!isOk(out as Outcome)) problems.push(`Unmount ${m.name}: ${out.text}`);
    }
    for (const { Name } of listed) {
      const out = await must(conn, "VolumeDriver.Remove", { Name });
      if (!isOk(out as Outcome)) problems.push(`Remove ${Name} at the end: ${out.text}`);
    }
    const left = (await must(conn, "VolumeDriver.List", {})).json.Volumes;
    if (left.length !== 0) problems.push(`listed after removing all: ${JSON.stringify(left).slice(0, 500)}`);
    conn.close();
    const kept = api.volumes();
    problems.push(...strays(layout.mnt).map((entry) => `after removing all, mount tree holds ${JSON.stringify(entry)}, which is no API volume`));
    expect(await children.stop(child, "SIGTERM")).toBe(0);

    console.log(
      `[quobyte-kill-injection] fuzz seed ${SEED}: ${sent} requests in ${(fuzzMs / 1000).toFixed(1)} s (${show(classes)}), ${exclusiveChecked} observed alone for API traffic; ` +
        `Creates naming an unknown tenant of an existing volume (no-ops): ${unknownTenantOk}; API volumes at the end: ${volumes.length}, kept by on_remove=keep after removing all: ${kept.length}\n` +
        `  answers: ${show(codes)}\n  API calls: ${show(apiCalls)}\n` +
        `  observed: Mountpoint entries over 255 bytes: ${overlong.size}${overlong.size ? ` (e.g. ${[...overlong][0]!.slice(0, 40)}...)` : ""}; volumes sharing a Mountpoint at the end: ${aliases.length ? aliases.join("; ") : "none"}`,
    );
    expect(problems).toEqual([]);
    expect(sent).toBeGreaterThanOrEqual(2000);
  }, 90_000);
});

// ---------------------------------------------------------------------------------------
// Deterministic reproductions of what the random passes above can hit

describe("quobyte backend: deterministic failure windows", () => {
  test("a Remove killed after the API deleted the volume leaves no listed volume the API lacks, and a later Create really creates", async () => {
    const api = await startFake();
    const first = await startServing();
    const conn = new EngineConn(layout.socket);
    expect(isOk(await conn.call("VolumeDriver.Create", { Name: "half", Opts: { size: "1G" } }))).toBe(true);
    expect(api.volumes().map((v) => v.name)).toEqual(["half"]);
    // The API carries out deleteVolume, then never answers: the plugin is killed while it waits.
    api.injectFault("deleteVolume", { kind: "hang", afterApply: true });
    const removing = conn.call("VolumeDriver.Remove", { Name: "half" });
    const deadline = performance.now() + 10_000;
    while (!api.log.some((e) => e.method === "deleteVolume") && performance.now() < deadline) await sleep(2);
    expect(api.volumes()).toEqual([]);
    await children.stop(first.child, "SIGKILL");
    expect((await removing).kind).toBe("cut");
    conn.close();

    await startServing();
    const admin = new EngineConn(layout.socket);
    try {
      const listed: string[] = (await must(admin, "VolumeDriver.List", {})).json.Volumes.map((v: { Name: string }) => v.Name);
      const meta = readMetadata(layout.meta).files.get("half");
      // The engine's next steps after a failed `docker volume rm`: create the name again, use it.
      const create = await must(admin, "VolumeDriver.Create", { Name: "half", Opts: null });
      const inApi = api.volumes().filter((v) => v.name === "half");
      const mount = await must(admin, "VolumeDriver.Mount", { Name: "half", ID: "b".repeat(64) });
      expect({
        listedWithoutApiVolume: listed.includes("half") && !markedRemoving(meta) && !api.volumes().some((v) => v.uuid === meta?.uuid),
        createAcknowledged: isOk(create as Outcome),
        apiVolumesAfterCreate: inApi.length,
        mount: isOk(mount as Outcome) ? "ok" : mount.text,
      }).toEqual({ listedWithoutApiVolume: false, createAcknowledged: true, apiVolumesAfterCreate: 1, mount: "ok" });
    } finally {
      admin.close();
    }
  }, 30_000);

  test("two volumes never share a Mountpoint: a name that reads as <user>#<group>@<volume> cannot alias a fixed-user volume", async () => {
    await startFake();
    await startServing();
    const conn = new EngineConn(layout.socket);
    try {
      expect(isOk(await conn.call("VolumeDriver.Create", { Name: "data", Opts: { fixed_user: "nobody", fixed_group: "nogroup" } }))).toBe(true);
      const alias = await must(conn, "VolumeDriver.Create", { Name: "nobody#nogroup@data", Opts: null });
      // Refusing the name is one fix; handing out distinct paths is the other.
      if (isOk(alias as Outcome)) {
        const a = await must(conn, "VolumeDriver.Mount", { Name: "data", ID: "c".repeat(64) });
        const b = await must(conn, "VolumeDriver.Mount", { Name: "nobody#nogroup@data", ID: "d".repeat(64) });
        expect(isOk(a as Outcome) && isOk(b as Outcome)).toBe(true);
        expect(b.json.Mountpoint).not.toBe(a.json.Mountpoint);
      } else {
        expect(errCode(alias.json)).toBe("INVALID_NAME");
      }
    } finally {
      conn.close();
    }
  }, 30_000);
});

describe("quobyte backend: SIGKILL between the steps of Remove (test-only crash points)", () => {
  for (const point of ["quobyte-remove:marked", "quobyte-remove:deleted"] as const) {
    test(`killed at ${point}: after the restart the volume is gone from Get, List and the API`, async () => {
      const api = await startFake();
      const first = await startServing();
      const conn = new EngineConn(layout.socket);
      expect(isOk(await conn.call("VolumeDriver.Create", { Name: "half", Opts: null }))).toBe(true);
      conn.close();
      expect(await children.stop(first.child, "SIGTERM")).toBe(0);

      const armed = await startServing(point);
      const cutConn = new EngineConn(layout.socket);
      expect((await cutConn.call("VolumeDriver.Remove", { Name: "half" })).kind).toBe("cut");
      cutConn.close();
      await armed.child.exited;
      expect(armed.child.signalCode).toBe("SIGKILL");

      await startServing();
      const problems: string[] = [];
      await checkWholeOrGone(layout.socket, ["half"], `after a kill at ${point}`, problems);
      expect(problems).toEqual([]);
      const admin = new EngineConn(layout.socket);
      try {
        expect(errCode((await must(admin, "VolumeDriver.Get", { Name: "half" })).json)).toBe("VOLUME_NOT_FOUND");
        expect((await must(admin, "VolumeDriver.List", {})).json.Volumes).toEqual([]);
        // The start finished the decided Remove: the API volume and the record are gone.
        expect(api.volumes()).toEqual([]);
        expect([...readMetadata(layout.meta).files.keys()]).toEqual([]);
        expect(isOk(await admin.call("VolumeDriver.Create", { Name: "half", Opts: null }))).toBe(true);
        expect(api.volumes().map((v) => v.name)).toEqual(["half"]);
      } finally {
        admin.close();
      }
    }, 30_000);
  }
});
