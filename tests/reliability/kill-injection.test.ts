// The compiled binary is SIGKILLed at >= 100 random points under a concurrent,
// colliding, engine-shaped workload and restarted each time; a model of what every client
// had acknowledged must still hold at the end. Plus: 50 concurrent Creates of one name,
// Remove racing Mount, and deterministic kills at chosen syscalls (strace fault injection).

import { Database } from "bun:sqlite";
import { afterAll, afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, lstatSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { makeTempDir, removeTempDir } from "../support/tmp.ts";
import {
  Children,
  childPids,
  CONTROL_DIR,
  EngineConn,
  ensureStrace,
  errCode,
  inventory,
  isOk,
  must,
  type Outcome,
  Rng,
  type ServeLayout,
  serveArgv,
  sleep,
  suiteSeed,
  waitServing,
} from "./support.ts";

const SEED = suiteSeed("kill-injection", 0x5eed0001);
const KILLS = 120;
const CLIENTS = 4;

const children = new Children();
let dir = "";
let layout: ServeLayout;
let cwd = "";

beforeEach(async () => {
  dir = await makeTempDir("dqp-kill-");
  layout = { root: `${dir}/root`, state: `${dir}/state`, socket: `${dir}/p.sock` };
  cwd = `${dir}/cwd`;
  mkdirSync(cwd);
});
afterEach(async () => {
  await children.stopAll();
  await removeTempDir(dir);
});
afterAll(async () => {
  await children.stopAll();
});

async function startServing(extra: string[] = []) {
  const child = children.spawn(serveArgv(layout, extra), { cwd });
  const ms = await waitServing(children, child, layout.socket);
  return { child, ms };
}

// ---------------------------------------------------------------------------------------
// The model

type Kind = "create" | "remove" | "mount" | "unmount" | "get" | "list";
/** ok: acknowledged (200, no Err); err: refused with a code that means "nothing was done"; unknown: either. */
type Result = "ok" | "err" | "unknown";

interface Op {
  client: number;
  kind: Kind;
  name: string;
  id?: string;
  /** performance.now() before the write and after the reply (or the cut) was seen. */
  start: number;
  end: number;
  result: Result;
  code?: string;
}

/** Mount references of one (volume, ID) pair; one client owns it, so its ops are sequential. */
interface Pair {
  name: string;
  id: string;
  client: number;
  /** Bounds of the plugin's count for this pair, given the unknown outcomes. */
  min: number;
  max: number;
  /** While min >= 1: since when (ack of the mount that made it so). */
  heldSince: number | undefined;
  /** Intervals in which the pair was certainly held. */
  held: [number, number][];
}

interface Marker {
  name: string;
  path: string;
  content: string;
  writtenStart: number;
}

/** Err codes after which the plugin has certainly changed nothing. */
const NO_EFFECT = new Set([
  "INVALID_REQUEST",
  "INVALID_NAME",
  "INVALID_OPTION",
  "VOLUME_NOT_FOUND",
  "VOLUME_IN_USE",
  "NOT_MOUNTED",
  "UNKNOWN_ENDPOINT",
  "REQUEST_TOO_LARGE",
]);

function classify(out: Outcome): { result: Result; code?: string } {
  if (out.kind !== "reply") return { result: "unknown", code: out.kind };
  const code = errCode(out.json);
  if (code === undefined && out.status === 200) return { result: "ok" };
  if (code !== undefined && NO_EFFECT.has(code)) return { result: "err", code };
  return { result: "unknown", code: code ?? `HTTP_${out.status}` };
}

const METHOD: Record<Kind, string> = {
  create: "VolumeDriver.Create",
  remove: "VolumeDriver.Remove",
  mount: "VolumeDriver.Mount",
  unmount: "VolumeDriver.Unmount",
  get: "VolumeDriver.Get",
  list: "VolumeDriver.List",
};

/** Names the workload never removes: everything acknowledged on them must survive every kill. */
function isKeeper(name: string): boolean {
  return name.startsWith("keep-");
}

const OPTS: readonly (Record<string, string> | null)[] = [null, {}, { mode: "0750" }, { user: "root", mode: "0755" }];

class Workload {
  readonly ops: Op[] = [];
  readonly pairs: Pair[] = [];
  readonly markers: Marker[] = [];
  readonly violations: string[] = [];
  stopping = false;
  unsent = 0;
  /** Keepers (never removed by the workload): when their first Create was acknowledged. */
  readonly keeperSince = new Map<string, number>();
  /** Errors with codes that do not prove "nothing was done", by message (names masked). */
  readonly otherErrors = new Map<string, number>();

  constructor(
    readonly names: readonly string[],
    readonly root: string,
    readonly socket: string,
  ) {}

  async client(c: number, rng: Rng): Promise<void> {
    const conn = new EngineConn(this.socket, 20_000);
    const mine: Pair[] = [];
    let seq = 0;
    try {
      while (!this.stopping) {
        let kind = rng.weighted<Kind>({ create: 24, remove: 24, mount: 22, unmount: 20, get: 5, list: 5 });
        const live = mine.filter((p) => p.max > 0);
        if (kind === "unmount" && live.length === 0) kind = "mount";
        // Like containers, mounts come and go: a client holds at most two at a time, so
        // volumes are often free and Removes succeed as well as collide.
        if (kind === "mount" && live.length >= 2) kind = "unmount";
        let name = rng.pick(this.names);
        if (kind === "remove") name = rng.pick(this.names.filter((n) => !isKeeper(n)));
        let pair: Pair | undefined;
        let body: Record<string, unknown>;
        switch (kind) {
          case "create":
            body = { Name: name, Opts: rng.pick(OPTS) };
            break;
          case "mount": {
            const held = mine.filter((p) => p.min > 0);
            if (held.length > 0 && rng.chance(0.25)) {
              pair = rng.pick(held); // the same ID twice, as `docker cp` does
              name = pair.name;
            } else {
              pair = { name, id: rng.hex(64), client: c, min: 0, max: 0, heldSince: undefined, held: [] };
            }
            body = { Name: name, ID: pair.id };
            break;
          }
          case "unmount":
            pair = rng.pick(live);
            name = pair.name;
            body = { Name: name, ID: pair.id };
            break;
          case "list":
            body = {};
            break;
          default:
            body = { Name: name };
        }

        const start = performance.now();
        // The engine unmounts only what it mounted; from here on the pair may drop to 0.
        let closedHold = false;
        if (kind === "unmount" && pair!.min <= 1 && pair!.heldSince !== undefined) {
          pair!.held.push([pair!.heldSince, start]);
          pair!.heldSince = undefined;
          closedHold = true;
        }
        const out = await conn.call(METHOD[kind], body);
        const end = performance.now();
        if (out.kind === "unsent") {
          // Never left this process: no effect, nothing to record.
          if (closedHold) {
            pair!.heldSince = pair!.held.pop()![0];
          }
          this.unsent++;
          await sleep(rng.int(1, 4));
          continue;
        }
        if (out.kind === "cut" && out.error.includes("hung")) {
          this.violations.push(`client ${c}: ${kind} of ${name} got no reply: ${out.error}`);
        }
        const { result, code } = classify(out);
        if (out.kind === "reply" && result === "unknown") {
          const message = `${kind}: ${String((out.json as { Err?: unknown })?.Err ?? out.text)}`.replaceAll(name, "<name>").replace(/[0-9a-f-]{36}/g, "<uuid>");
          this.otherErrors.set(message, (this.otherErrors.get(message) ?? 0) + 1);
        }
        this.ops.push({ client: c, kind, name, id: pair?.id, start, end, result, code });
        if (isKeeper(name)) {
          const since = this.keeperSince.get(name);
          if (kind === "create" && result === "ok" && since === undefined) this.keeperSince.set(name, end);
          if (since !== undefined && since < start && code === "VOLUME_NOT_FOUND") {
            this.violations.push(`client ${c}: ${kind} of ${name} answered VOLUME_NOT_FOUND although its Create was acknowledged and it was never removed`);
          }
        }

        if (kind === "mount") {
          const p = pair!;
          if (result === "ok") {
            const mountpoint = (out as { json: { Mountpoint?: unknown } }).json.Mountpoint;
            if (mountpoint !== join(this.root, name)) {
              this.violations.push(`client ${c}: Mount of ${name} answered Mountpoint ${JSON.stringify(mountpoint)}`);
            }
            p.min++;
            p.max++;
            if (p.heldSince === undefined) p.heldSince = end;
            // What a container would do: write into the volume while it is mounted.
            const path = join(this.root, name, `m-${c}-${seq++}`);
            const content = `${p.id} ${seq}\n`;
            const writtenStart = performance.now();
            try {
              await writeFile(path, content);
              this.markers.push({ name, path, content, writtenStart });
            } catch (error) {
              this.violations.push(`client ${c}: acknowledged mount of ${name} is not writable: ${String(error)}`);
            }
          } else if (result === "unknown") {
            p.max++;
          }
          if (p.max > 0 && !mine.includes(p)) {
            mine.push(p);
            this.pairs.push(p);
          }
        } else if (kind === "unmount") {
          const p = pair!;
          if (result === "ok") {
            p.min = Math.max(0, p.min - 1);
            p.max = Math.max(0, p.max - 1);
          } else if (result === "unknown") {
            p.min = Math.max(0, p.min - 1);
          } else if (closedHold && p.min > 0) {
            p.heldSince = p.held.pop()![0];
          }
          if (p.min > 0 && p.heldSince === undefined) p.heldSince = end;
          if (p.max === 0) mine.splice(mine.indexOf(p), 1);
        } else if (kind === "list" && result === "ok") {
          const volumes = (out as { json: { Volumes?: { Name: string }[] } }).json.Volumes ?? [];
          const seen = volumes.map((v) => v.Name);
          if (new Set(seen).size !== seen.length) this.violations.push(`List returned duplicates: ${JSON.stringify(seen)}`);
        } else if (kind === "get" && result === "ok") {
          const volume = (out as { json: { Volume?: { Name?: string } } }).json.Volume;
          if (volume?.Name !== name) this.violations.push(`Get ${name} answered ${JSON.stringify(out)}`);
        }
      }
    } finally {
      conn.close();
      for (const p of mine) {
        if (p.heldSince !== undefined) {
          p.held.push([p.heldSince, Number.POSITIVE_INFINITY]);
          p.heldSince = undefined;
        }
      }
    }
  }

  private effective(op: Op): boolean {
    return op.result === "ok" || op.result === "unknown";
  }

  /** An acknowledged Create after which no Remove could have taken effect. */
  mustExist(name: string): boolean {
    const ops = this.ops.filter((o) => o.name === name);
    return ops.some(
      (c) =>
        c.kind === "create" &&
        c.result === "ok" &&
        ops.every((r) => !(r.kind === "remove" && this.effective(r) && r.end > c.start)),
    );
  }

  /** No Create could have taken effect after an acknowledged Remove (or none ever could). */
  mustNotExist(name: string): boolean {
    const ops = this.ops.filter((o) => o.name === name);
    const creates = ops.filter((o) => o.kind === "create" && this.effective(o));
    if (creates.length === 0) return true;
    return ops.some((r) => r.kind === "remove" && r.result === "ok" && creates.every((c) => c.end < r.start));
  }

  /** Acknowledged Removes that ran entirely while an acknowledged mount of the volume was held. */
  removesWhileHeld(): string[] {
    const out: string[] = [];
    for (const r of this.ops) {
      if (r.kind !== "remove" || r.result !== "ok") continue;
      for (const p of this.pairs) {
        if (p.name !== r.name) continue;
        for (const [from, to] of p.held) {
          if (from < r.start && r.end < to) {
            out.push(`Remove of ${r.name} by client ${r.client} succeeded at ${r.start.toFixed(1)}-${r.end.toFixed(1)} ms while ID ${p.id.slice(0, 12)} (client ${p.client}) held it since ${from.toFixed(1)}`);
          }
        }
      }
    }
    return out;
  }

  /** Markers that must still be there: no Remove of their volume could have run after the write began. */
  markersThatMustSurvive(): Marker[] {
    return this.markers.filter((m) =>
      this.ops.every((r) => !(r.kind === "remove" && r.name === m.name && this.effective(r) && r.end > m.writtenStart)),
    );
  }

  mountBounds(name: string): { min: number; max: number } {
    let min = 0;
    let max = 0;
    for (const p of this.pairs) {
      if (p.name !== name) continue;
      min += p.min;
      max += p.max;
    }
    return { min, max };
  }

  summary(): string {
    const counts = new Map<string, number>();
    for (const op of this.ops) {
      const key = `${op.kind}:${op.result}${op.code ? `:${op.code}` : ""}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    const errors = [...this.otherErrors.entries()].map(([m, n]) => `${n}x ${m}`);
    return (
      [...counts.entries()]
        .sort()
        .map(([k, v]) => `${k}=${v}`)
        .join(" ") + (errors.length ? `\n  other errors: ${errors.join("; ")}` : "")
    );
  }
}

// ---------------------------------------------------------------------------------------

describe("SIGKILL at random points under a concurrent engine workload", () => {
  test(
    `${KILLS} kills: nothing acknowledged is lost, mounts are counted, everything is removable`,
    async () => {
      const rng = new Rng(SEED);
      const names = ["kv-a", "kv-b", "kv-c", "kv-d", "kv-ü-e", "keep-1", "keep-2"];
      const work = new Workload(names, layout.root, layout.socket);
      const restartMs: number[] = [];
      let staleReplaced = 0;

      // The plugin must be up once before the root exists (its real path is the Mountpoint).
      let { child } = await startServing();
      const clients = Array.from({ length: CLIENTS }, (_, c) => work.client(c, rng.fork(c)));
      const killRng = rng.fork(1000);
      try {
        for (let k = 0; k < KILLS; k++) {
          await sleep(killRng.int(5, 60));
          await children.stop(child, "SIGKILL");
          // SIGKILL leaves the socket file behind; the next start must replace it.
          if (lstatSync(layout.socket).isSocket()) staleReplaced++;
          const started = await startServing();
          child = started.child;
          restartMs.push(started.ms);
        }
      } finally {
        // Also when a restart fails: the clients must not outlive the test.
        work.stopping = true;
        await Promise.all(clients);
      }
      await children.stop(child, "SIGKILL");

      // A clean restart, then the whole model.
      child = (await startServing()).child;
      const conn = new EngineConn(layout.socket);
      const problems: string[] = [...work.violations, ...work.removesWhileHeld()];

      // Leftovers of interrupted removals are swept in the background at start.
      const trashDeadline = performance.now() + 15_000;
      while (inventory(layout.root).trash.length > 0 && performance.now() < trashDeadline) await sleep(20);

      const listed: string[] = (await must(conn, "VolumeDriver.List", {})).json.Volumes.map((v: { Name: string }) => v.Name);
      if (new Set(listed).size !== listed.length) problems.push(`List has duplicates: ${JSON.stringify(listed)}`);
      const inv = inventory(layout.root);
      if (inv.trash.length > 0) problems.push(`trash not emptied after restart: ${inv.trash.length} entries`);

      // List <-> metadata <-> directories.
      const metaNames = [...inv.metadata.keys()].sort();
      if (JSON.stringify(metaNames) !== JSON.stringify([...listed].sort())) {
        problems.push(`List ${JSON.stringify(listed)} differs from metadata files ${JSON.stringify(metaNames)}`);
      }
      const states = new Map<string, string | undefined>();
      for (const [name, meta] of inv.metadata) {
        states.set(name, meta.state);
        if (meta.kind !== "file") problems.push(`metadata of ${name} is a ${meta.kind}`);
        if (meta.state !== "ready" && meta.state !== "removing") problems.push(`metadata of ${name} has state ${meta.state}`);
        if (meta.state === "ready" && inv.entries.get(name) !== "dir") {
          problems.push(`ready volume ${name} has no directory (${inv.entries.get(name) ?? "missing"})`);
        }
      }
      const orphans: string[] = [];
      for (const [name, kind] of inv.entries) {
        if (inv.metadata.has(name)) continue;
        // A Create cut between mkdir and its metadata write leaves its directory behind;
        // that window is reproduced deterministically in its own test below. Here it must
        // at least be explained by such a Create.
        const cutCreate = work.ops.some((o) => o.kind === "create" && o.name === name && o.result === "unknown");
        if (kind === "dir" && cutCreate) orphans.push(name);
        else problems.push(`${kind} ${name} in the root has no metadata and no interrupted Create explains it`);
      }

      // The model: acknowledged volumes exist, acknowledged removals stay removed.
      for (const name of names) {
        const inList = listed.includes(name);
        if (work.mustExist(name) && !(inList && states.get(name) === "ready")) {
          problems.push(`acknowledged volume ${name} lost (listed: ${inList}, state ${states.get(name)})`);
        }
        if (work.mustNotExist(name) && inList) problems.push(`volume ${name} exists although its removal was acknowledged last`);
        const bounds = work.mountBounds(name);
        if (!inList) {
          if (bounds.min > 0) problems.push(`volume ${name} is gone while ${bounds.min} acknowledged mount(s) hold it`);
          continue;
        }
        const got = await must(conn, "VolumeDriver.Get", { Name: name });
        const mounts = got.json.Volume?.Status?.mounts;
        if (!(typeof mounts === "number" && mounts >= bounds.min && mounts <= bounds.max)) {
          problems.push(`Get ${name}: Status.mounts ${JSON.stringify(mounts)}, model allows ${bounds.min}..${bounds.max}`);
        }
      }
      for (const marker of work.markersThatMustSurvive()) {
        const content = await readFile(marker.path, "utf8").catch((e) => `<${String(e)}>`);
        if (content !== marker.content) problems.push(`data written to mounted ${marker.name} is lost: ${marker.path}: ${content}`);
      }

      // Remove of a volume still held is refused.
      let heldChecked = 0;
      for (const name of names) {
        if (!listed.includes(name) || work.mountBounds(name).min === 0) continue;
        heldChecked++;
        const out = await must(conn, "VolumeDriver.Remove", { Name: name });
        if (errCode(out.json) !== "VOLUME_IN_USE") problems.push(`Remove of held ${name} answered ${out.text}`);
        if (!existsSync(join(layout.root, name))) problems.push(`Remove of held ${name} deleted its directory`);
      }

      // Unmount everything the workload may hold, then everything is removable.
      for (const p of work.pairs) {
        for (let i = 0; i < p.max; i++) {
          const out = await must(conn, "VolumeDriver.Unmount", { Name: p.name, ID: p.id });
          if (!isOk(out as Outcome)) problems.push(`Unmount ${p.name} ${p.id.slice(0, 12)}: ${out.text}`);
        }
      }
      for (const name of listed) {
        const got = await must(conn, "VolumeDriver.Get", { Name: name });
        if (got.json.Volume?.Status?.mounts !== 0) problems.push(`after unmounting all, Get ${name}: ${got.text}`);
        const out = await must(conn, "VolumeDriver.Remove", { Name: name });
        if (!isOk(out as Outcome)) problems.push(`Remove ${name} after unmounting all: ${out.text}`);
      }
      // The engine's way to clear a name whose Create failed: create it again, remove it.
      for (const name of orphans) {
        for (const method of ["VolumeDriver.Create", "VolumeDriver.Remove"]) {
          const out = await must(conn, method, { Name: name });
          if (!isOk(out as Outcome)) problems.push(`${method} of orphaned ${name}: ${out.text}`);
        }
      }
      const after = (await must(conn, "VolumeDriver.List", {})).json.Volumes;
      if (after.length !== 0) problems.push(`volumes left after removing all: ${JSON.stringify(after)}`);
      conn.close();
      const rootLeft = readdirSync(layout.root);
      if (JSON.stringify(rootLeft) !== JSON.stringify([CONTROL_DIR])) problems.push(`root holds ${JSON.stringify(rootLeft)}`);
      const leftInv = inventory(layout.root);
      if (leftInv.metadata.size !== 0) problems.push(`metadata left: ${[...leftInv.metadata.keys()]}`);

      // SIGTERM: clean exit, socket removed, no mount references left in the database.
      expect(await children.stop(child, "SIGTERM")).toBe(0);
      if (existsSync(layout.socket)) problems.push("socket left after SIGTERM");
      const db = new Database(join(layout.state, "mounts.db"), { readonly: true });
      const rows = (db.query("SELECT COUNT(*) AS n FROM mounts").get() as { n: number }).n;
      db.close();
      if (rows !== 0) problems.push(`mounts.db still holds ${rows} reference(s)`);

      restartMs.sort((a, b) => a - b);
      console.log(
        `[kill-injection] seed ${SEED}: ${KILLS} SIGKILLs (stale socket replaced ${staleReplaced}x), restart to serving p50 ${restartMs[restartMs.length >> 1]?.toFixed(0)} ms max ${restartMs.at(-1)?.toFixed(0)} ms; ` +
          `${work.ops.length} requests sent (${work.unsent} refused at connect), ${work.pairs.length} mount IDs, ${work.markers.length} files written, ` +
          `${work.markersThatMustSurvive().length} had to survive (${work.markersThatMustSurvive().filter((m) => isKeeper(m.name)).length} on never-removed volumes); names that had to exist at the end: ${names.filter((n) => work.mustExist(n)).join(",") || "-"}; ` +
          `Remove refused for ${heldChecked} volume(s) still held at the end; orphan directories of interrupted Creates: ${orphans.length} (${orphans.join(",")}); temp files left in the metadata dir: ${inv.metadataTemp.length}\n  outcomes: ${work.summary()}`,
      );
      expect(staleReplaced).toBe(KILLS);
      expect(problems).toEqual([]);
    },
    150_000,
  );
});

describe("concurrency without kills", () => {
  test("50 concurrent Creates of one name from 50 connections: all succeed, one volume", async () => {
    const rng = new Rng(SEED ^ 0x50);
    await startServing();
    const conns = Array.from({ length: 50 }, () => new EngineConn(layout.socket));
    try {
      // Open all connections first, so that the Creates really arrive together.
      await Promise.all(conns.map((c) => must(c, "Plugin.Activate")));
      for (let round = 0; round < 5; round++) {
        const name = `same-${round}`;
        const options = conns.map(() => rng.pick([{ mode: "0750" }, { mode: "0700" }, null, { mode: "2770", group: "nogroup" }]));
        const replies = await Promise.all(conns.map((c, i) => must(c, "VolumeDriver.Create", { Name: name, Opts: options[i] })));
        expect(replies.filter((r) => !isOk(r as Outcome)).map((r) => r.text)).toEqual([]);
        const listed = (await must(conns[0]!, "VolumeDriver.List", {})).json.Volumes.map((v: { Name: string }) => v.Name);
        expect(listed.filter((n: string) => n === name)).toEqual([name]);
        const inv = inventory(layout.root);
        expect(inv.entries.get(name)).toBe("dir");
        expect(inv.metadata.get(name)?.state).toBe("ready");
        expect(inv.metadataTemp).toEqual([]);
        // One Create won; the others changed nothing: the stored options are one of those
        // sent, and the directory's mode is the one they ask for.
        const stored = JSON.parse(inv.metadata.get(name)!.raw).options as Record<string, string>;
        expect(options.map((o) => JSON.stringify(o ?? {}))).toContain(JSON.stringify(stored));
        const mode = statSync(join(layout.root, name)).mode & 0o7777;
        expect(mode).toBe(stored.mode ? Number.parseInt(stored.mode, 8) : 0o755);
      }
      expect(inventory(layout.root).entries.size).toBe(5);
    } finally {
      for (const c of conns) c.close();
    }
  }, 60_000);

  test("Remove racing Mount never removes a volume that has an acknowledged mount", async () => {
    const rng = new Rng(SEED ^ 0x4ace);
    await startServing();
    const lanes = 4;
    const rounds = 100; // per lane
    const tally = { mountWon: 0, removeWon: 0, unmountFirst: 0, removeRefused: 0 };
    const problems: string[] = [];
    await Promise.all(
      Array.from({ length: lanes }, async (_, lane) => {
        const r = rng.fork(lane);
        const [admin, mounter, remover] = [0, 1, 2].map(() => new EngineConn(layout.socket));
        const name = `race-${lane}`;
        try {
          for (let round = 0; round < rounds; round++) {
            expect(isOk((await admin!.call("VolumeDriver.Create", { Name: name })) as Outcome)).toBe(true);
            const id = r.hex(64);
            const stagger = r.int(0, 3);
            const mountFirst = r.chance(0.5);
            const [mounted, removed] = await Promise.all([
              (async () => {
                if (!mountFirst) await sleep(stagger);
                return must(mounter!, "VolumeDriver.Mount", { Name: name, ID: id });
              })(),
              (async () => {
                if (mountFirst) await sleep(stagger);
                return must(remover!, "VolumeDriver.Remove", { Name: name });
              })(),
            ]);
            const mountOk = isOk(mounted as Outcome);
            const removeOk = isOk(removed as Outcome);
            if (mountOk && !removeOk && errCode(removed.json) === "VOLUME_IN_USE") {
              tally.mountWon++;
              // The acknowledged mount is real: counted, and its directory is there and writable.
              const got = await must(admin!, "VolumeDriver.Get", { Name: name });
              if (got.json.Volume?.Status?.mounts !== 1) problems.push(`${name} round ${round}: Get after mount: ${got.text}`);
              await writeFile(join(mounted.json.Mountpoint, "data"), "x").catch((e) => problems.push(`${name}: ${String(e)}`));
              // Unmount racing Remove: either order is fine, but Remove may only win after the unmount.
              const unmountFirst = r.chance(0.5);
              const delay = r.int(0, 2);
              const [unmounted, removed2] = await Promise.all([
                (async () => {
                  if (!unmountFirst) await sleep(delay);
                  return must(mounter!, "VolumeDriver.Unmount", { Name: name, ID: id });
                })(),
                (async () => {
                  if (unmountFirst) await sleep(delay);
                  return must(remover!, "VolumeDriver.Remove", { Name: name });
                })(),
              ]);
              if (!isOk(unmounted as Outcome)) problems.push(`${name}: Unmount: ${unmounted.text}`);
              if (isOk(removed2 as Outcome)) tally.unmountFirst++;
              else if (errCode(removed2.json) === "VOLUME_IN_USE") {
                tally.removeRefused++;
                const again = await must(admin!, "VolumeDriver.Remove", { Name: name });
                if (!isOk(again as Outcome)) problems.push(`${name}: Remove after Unmount: ${again.text}`);
              } else problems.push(`${name}: Remove racing Unmount: ${removed2.text}`);
            } else if (removeOk && !mountOk && errCode(mounted.json) === "VOLUME_NOT_FOUND") {
              tally.removeWon++;
            } else {
              problems.push(`${name} round ${round}: Mount ${mounted.text} / Remove ${removed.text}`);
              // Leave a clean slate for the next round.
              await admin!.call("VolumeDriver.Unmount", { Name: name, ID: id });
              await admin!.call("VolumeDriver.Remove", { Name: name });
            }
            if (existsSync(join(layout.root, name))) problems.push(`${name} round ${round}: directory left after the round`);
          }
        } finally {
          for (const c of [admin, mounter, remover]) c!.close();
        }
      }),
    );
    console.log(`[kill-injection] Remove vs Mount, ${lanes * rounds} rounds: ${JSON.stringify(tally)}`);
    expect(problems).toEqual([]);
    expect(tally.mountWon + tally.removeWon).toBe(lanes * rounds);
    expect(inventory(layout.root).entries.size).toBe(0);
  }, 90_000);
});

describe("SIGKILL at chosen syscalls (strace fault injection)", () => {
  /**
   * Starts serve under strace, which SIGKILLs it on entering the first of `syscalls`
   * (the first whose first path argument is `path`, when given); the syscall itself is not
   * carried out. strace counts `when=` per thread and Bun runs file operations on a thread
   * pool, so "the n-th call" cannot be chosen; "the first" or a path can.
   */
  async function startKilledAt(syscalls: string, path?: string) {
    const strace = await ensureStrace();
    const filter = path === undefined ? [] : ["-P", path];
    const child = children.spawn(
      [strace, "-f", "-qq", "-o", `${dir}/strace.log`, ...filter, "-e", `trace=${syscalls}`, "-e", `inject=${syscalls}:signal=SIGKILL`, ...serveArgv(layout)],
      { cwd },
    );
    await waitServing(children, child, layout.socket);
    for (const pid of childPids(child.pid)) children.adopt(pid, "docker-quobyte-plugin");
    return child;
  }

  const RENAMES = "rename,renameat,renameat2";

  /** Creates "interrupted", SIGKILLed at the rename that would put its metadata in place; restarts cleanly. */
  async function interruptedCreate(): Promise<EngineConn> {
    // The first rename of the process is the one that puts the metadata in place.
    const traced = await startKilledAt(RENAMES);
    const conn = new EngineConn(layout.socket);
    const out = await conn.call("VolumeDriver.Create", { Name: "interrupted", Opts: null });
    conn.close();
    expect(out.kind).toBe("cut");
    await traced.exited;
    await startServing();
    return new EngineConn(layout.socket);
  }

  test("a Create killed between mkdir and its metadata rename leaves no directory behind once its name is removed", async () => {
    const admin = await interruptedCreate();
    try {
      // Not acknowledged, not listed: fine. The engine reports the failed Create; the user
      // then removes the name (or never mentions it again). Either way nothing of it may
      // stay in the root, invisible to List and to every later Remove.
      expect((await must(admin, "VolumeDriver.List", {})).json.Volumes).toEqual([]);
      expect(isOk((await admin.call("VolumeDriver.Remove", { Name: "interrupted" })) as Outcome)).toBe(true);
    } finally {
      admin.close();
    }
    const inv = inventory(layout.root);
    expect([...inv.entries].map(([name, kind]) => `${kind} ${name}`)).toEqual([]);
  }, 30_000);

  test("temporary files of interrupted metadata writes do not accumulate: the next start removes them", async () => {
    const admin = await interruptedCreate();
    admin.close();
    expect(inventory(layout.root).metadataTemp).toEqual([]);
  }, 30_000);

  for (const [when, step] of [
    [1, "at the rename of its 'removing' mark"],
    [2, "after marking it 'removing', at the rename of its data into the trash"],
  ] as const) {
    test(`a Remove killed ${step} is finished by the next Remove, and blocks Mount meanwhile`, async () => {
      await startServing().then(async ({ child }) => {
        const conn = new EngineConn(layout.socket);
        expect(isOk((await conn.call("VolumeDriver.Create", { Name: "half", Opts: { mode: "0750" } })) as Outcome)).toBe(true);
        await writeFile(join(layout.root, "half", "data"), "precious");
        conn.close();
        expect(await children.stop(child, "SIGTERM")).toBe(0);
      });
      // #1 is the first rename of the process (the metadata); #2 renames the directory.
      const traced = await startKilledAt(RENAMES, when === 1 ? undefined : join(layout.root, "half"));
      const conn = new EngineConn(layout.socket);
      const cut = await conn.call("VolumeDriver.Remove", { Name: "half" });
      expect(cut).toMatchObject({ kind: "cut" });
      conn.close();
      await traced.exited;

      await startServing();
      const admin = new EngineConn(layout.socket);
      const got = await must(admin, "VolumeDriver.Get", { Name: "half" });
      const inv = inventory(layout.root);
      expect(inv.entries.get("half")).toBe("dir");
      if (when === 1) {
        // Nothing happened yet: the volume is intact and usable.
        expect(got.json.Volume.Status.state).toBeUndefined();
        expect(await readFile(join(layout.root, "half", "data"), "utf8")).toBe("precious");
      } else {
        expect(got.json.Volume.Status.state).toBe("removing");
        const mount = await must(admin, "VolumeDriver.Mount", { Name: "half", ID: "a".repeat(64) });
        expect(errCode(mount.json)).toBeDefined();
      }
      expect(isOk((await admin.call("VolumeDriver.Remove", { Name: "half" })) as Outcome)).toBe(true);
      expect((await must(admin, "VolumeDriver.List", {})).json.Volumes).toEqual([]);
      admin.close();
      const done = inventory(layout.root);
      expect([...done.entries.keys()]).toEqual([]);
      expect([...done.metadata.keys()]).toEqual([]);
      expect(done.trash).toEqual([]);
      console.log(`[kill-injection] Remove killed at rename #${when}: temp files left in the metadata dir: ${done.metadataTemp.length}`);
    }, 30_000);
  }
});
