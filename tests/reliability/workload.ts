// The engine-shaped workload of the kill-injection suites (posix and quobyte backends)
// and the model of what every client had acknowledged: concurrent clients Create, Remove,
// Mount, Unmount, Get and List a few colliding names while the plugin is SIGKILLed and
// restarted; afterwards the model says what must (not) exist, how many mounts each volume
// may hold and which written files must have survived. Plus the kill loop and the checks
// both suites run at the end.

import { expect } from "bun:test";
import { existsSync, lstatSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { MountRefs } from "../../src/core/mount-refs.ts";
import { type Child, type Children, EngineConn, errCode, isOk, must, type Outcome, type Rng, sleep } from "./support.ts";

export type Kind = "create" | "remove" | "mount" | "unmount" | "get" | "list";
/** ok: acknowledged (200, no Err); err: refused with a code that means "nothing was done"; unknown: either. */
export type Result = "ok" | "err" | "unknown";

export interface Op {
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
export interface Pair {
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

export interface Marker {
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
export function isKeeper(name: string): boolean {
  return name.startsWith("keep-");
}

/** `key=count` pairs, sorted by key. */
export function show(counts: Map<string, number>): string {
  return [...counts.entries()]
    .sort()
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
}

/** What differs between the suites' workloads; the rest of a client's behaviour is shared. */
export interface WorkloadConfig {
  /** The volume names the clients collide on (those starting with "keep-" are never removed). */
  names: readonly string[];
  /** Where acknowledged volumes are mounted: a Mount must answer `<dataRoot>/<name>`. */
  dataRoot: string;
  socket: string;
  /** How often a client picks each operation. */
  weights: Readonly<Record<Kind, number>>;
  /** The `Opts` of Creates, picked at random. */
  createOpts: readonly (Record<string, string> | null)[];
  /** Masks UUIDs in the messages of errors that are not "nothing was done". */
  uuidPattern: RegExp;
}

export class Workload {
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
  readonly names: readonly string[];
  /** Closed while the kill loop inspects a restarted plugin: clients wait before their next request. */
  private gate: Promise<void> | undefined;
  private running = 0;
  private parked = 0;

  constructor(readonly config: WorkloadConfig) {
    this.names = config.names;
  }

  /**
   * Holds every client before its next request and resolves once all are held (their
   * requests in flight are over), so what the plugin reports can be checked against the
   * disk without a client changing it meanwhile. Call the returned function to go on.
   */
  async pause(): Promise<() => void> {
    let open!: () => void;
    this.gate = new Promise((resolve) => (open = resolve));
    while (this.parked < this.running) await sleep(1);
    return () => {
      this.gate = undefined;
      open();
    };
  }

  async client(c: number, rng: Rng): Promise<void> {
    const conn = new EngineConn(this.config.socket, 20_000);
    const mine: Pair[] = [];
    let seq = 0;
    this.running++;
    try {
      while (!this.stopping) {
        let kind = rng.weighted<Kind>(this.config.weights);
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
            body = { Name: name, Opts: rng.pick(this.config.createOpts) };
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

        while (this.gate) {
          this.parked++;
          await this.gate;
          this.parked--;
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
          if (closedHold) pair!.heldSince = pair!.held.pop()![0];
          this.unsent++;
          await sleep(rng.int(1, 4));
          continue;
        }
        if (out.kind === "cut" && out.error.includes("hung")) {
          this.violations.push(`client ${c}: ${kind} of ${name} got no reply: ${out.error}`);
        }
        const { result, code } = classify(out);
        if (out.kind === "reply" && result === "unknown") {
          const message = `${kind}: ${String((out.json as { Err?: unknown })?.Err ?? out.text)}`
            .replaceAll(name, "<name>")
            .replace(this.config.uuidPattern, "<uuid>");
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
            if (mountpoint !== join(this.config.dataRoot, name)) {
              this.violations.push(`client ${c}: Mount of ${name} answered Mountpoint ${JSON.stringify(mountpoint)}`);
            }
            p.min++;
            p.max++;
            if (p.heldSince === undefined) p.heldSince = end;
            // What a container would do: write into the volume while it is mounted.
            const path = join(this.config.dataRoot, name, `m-${c}-${seq++}`);
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
      this.running--;
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
      (c) => c.kind === "create" && c.result === "ok" && ops.every((r) => !(r.kind === "remove" && this.effective(r) && r.end > c.start)),
    );
  }

  /** No Create could have taken effect after an acknowledged Remove (or none ever could). */
  mustNotExist(name: string): boolean {
    const ops = this.ops.filter((o) => o.name === name);
    const creates = ops.filter((o) => o.kind === "create" && this.effective(o));
    if (creates.length === 0) return true;
    return ops.some((r) => r.kind === "remove" && r.result === "ok" && creates.every((c) => c.end < r.start));
  }

  /** Ops of `kind` on `name` cut off (or failed) without a definite outcome. */
  interrupted(kind: Kind, name: string): number {
    return this.ops.filter((o) => o.kind === kind && o.name === name && o.result === "unknown").length;
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
    return show(counts) + (errors.length ? `\n  other errors: ${errors.join("; ")}` : "");
  }
}

// ---------------------------------------------------------------------------------------
// The kill loop and the checks at the end

/**
 * Runs `clients` workload clients (each with `rng.fork(c)`) while the plugin is SIGKILLed
 * `kills` times at random points (`rng.fork(1000)` draws the pauses) and restarted each
 * time; `afterKill(k)` inspects each kill point before the restart. Stops the clients
 * (also when a restart fails), then SIGKILLs the last plugin.
 */
export async function runUnderKills(options: {
  work: Workload;
  rng: Rng;
  clients: number;
  kills: number;
  children: Children;
  socket: string;
  child: Child;
  startServing: () => Promise<{ child: Child; ms: number }>;
  afterKill?: (k: number) => void;
}): Promise<{ restartMs: number[]; staleReplaced: number }> {
  const { work, rng, children, socket } = options;
  const restartMs: number[] = [];
  let staleReplaced = 0;
  let child = options.child;
  const clients = Array.from({ length: options.clients }, (_, c) => work.client(c, rng.fork(c)));
  const killRng = rng.fork(1000);
  try {
    for (let k = 0; k < options.kills; k++) {
      await sleep(killRng.int(5, 60));
      await children.stop(child, "SIGKILL");
      // SIGKILL leaves the socket file behind; the next start must replace it.
      if (lstatSync(socket).isSocket()) staleReplaced++;
      options.afterKill?.(k);
      const resume = await work.pause();
      try {
        const started = await options.startServing();
        child = started.child;
        restartMs.push(started.ms);
        await checkWholeOrGone(socket, work.names, `after restart ${k}`, work.violations);
      } finally {
        resume();
      }
    }
  } finally {
    // Also when a restart fails: the clients must not outlive the test.
    work.stopping = true;
    await Promise.all(clients);
  }
  await children.stop(child, "SIGKILL");
  return { restartMs, staleReplaced };
}

/**
 * Every volume is whole or gone: each one List or Get reports has its Mountpoint as a
 * directory (a Remove cut by a crash must not leave a volume whose data is in the trash).
 */
export async function checkWholeOrGone(socket: string, names: readonly string[], when: string, problems: string[]): Promise<void> {
  const conn = new EngineConn(socket);
  const reported = new Map<string, unknown>();
  try {
    for (const volume of (await must(conn, "VolumeDriver.List", {})).json.Volumes as { Name: string; Mountpoint: unknown }[]) {
      reported.set(`List ${volume.Name}`, volume.Mountpoint);
    }
    for (const name of names) {
      const got = await must(conn, "VolumeDriver.Get", { Name: name });
      if (got.json.Volume) reported.set(`Get ${name}`, got.json.Volume.Mountpoint);
      else if (errCode(got.json) !== "VOLUME_NOT_FOUND") problems.push(`${when}: Get ${name}: ${got.text}`);
    }
  } finally {
    conn.close();
  }
  for (const [what, mountpoint] of reported) {
    let kind = "missing";
    try {
      const info = lstatSync(String(mountpoint));
      kind = info.isDirectory() ? "dir" : info.isSymbolicLink() ? "symlink" : "file";
    } catch {
      // missing
    }
    if (kind !== "dir") problems.push(`${when}: ${what} reports Mountpoint ${JSON.stringify(mountpoint)}, which is ${kind}`);
  }
}

/**
 * The mount count of one of the workload's names against the model. A name not listed
 * must not be held; a listed one's Get must report a count within the model's bounds.
 * Returns the Get's answer (undefined when not listed).
 */
export async function checkMountCount(
  conn: EngineConn,
  work: Workload,
  name: string,
  inList: boolean,
  problems: string[],
): Promise<{ status: number; json: any; text: string } | undefined> {
  const bounds = work.mountBounds(name);
  if (!inList) {
    if (bounds.min > 0) problems.push(`volume ${name} is gone while ${bounds.min} acknowledged mount(s) hold it`);
    return undefined;
  }
  const got = await must(conn, "VolumeDriver.Get", { Name: name });
  const mounts = got.json.Volume?.Status?.mounts;
  if (!(typeof mounts === "number" && mounts >= bounds.min && mounts <= bounds.max)) {
    problems.push(`Get ${name}: Status.mounts ${JSON.stringify(mounts)}, model allows ${bounds.min}..${bounds.max}`);
  }
  return got;
}

/** Files written into acknowledged mounts that no Remove could have deleted are still there, unchanged. */
export async function checkMarkers(work: Workload, problems: string[]): Promise<void> {
  for (const marker of work.markersThatMustSurvive()) {
    const content = await readFile(marker.path, "utf8").catch((e) => `<${String(e)}>`);
    if (content !== marker.content) problems.push(`data written to mounted ${marker.name} is lost: ${marker.path}: ${content}`);
  }
}

/**
 * Remove of every listed name the model says is still held must be refused and leave its
 * directory under `dataRoot`; `alsoCheck(name)` adds the backend's own checks. Returns how
 * many names were checked.
 */
export async function checkRemoveOfHeldRefused(
  conn: EngineConn,
  work: Workload,
  listed: readonly string[],
  dataRoot: string,
  problems: string[],
  alsoCheck: (name: string) => void = () => {},
): Promise<number> {
  let heldChecked = 0;
  for (const name of work.names) {
    if (!listed.includes(name) || work.mountBounds(name).min === 0) continue;
    heldChecked++;
    const out = await must(conn, "VolumeDriver.Remove", { Name: name });
    if (errCode(out.json) !== "VOLUME_IN_USE") problems.push(`Remove of held ${name} answered ${out.text}`);
    alsoCheck(name);
    if (!existsSync(join(dataRoot, name))) problems.push(`Remove of held ${name} deleted its directory`);
  }
  return heldChecked;
}

/** Unmounts everything the workload may hold, then every listed volume has no mounts and is removable. */
export async function unmountAndRemoveAll(conn: EngineConn, work: Workload, listed: readonly string[], problems: string[]): Promise<void> {
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
}

/** SIGTERM: clean exit, socket removed, no mount references left in the state directory. */
export async function checkCleanSigterm(
  children: Children,
  child: Child,
  layout: { socket: string; state: string },
  problems: string[],
): Promise<void> {
  expect(await children.stop(child, "SIGTERM")).toBe(0);
  if (existsSync(layout.socket)) problems.push("socket left after SIGTERM");
  const refs = MountRefs.open({ stateDir: layout.state });
  const held = refs.snapshot();
  refs.close();
  if (held.size !== 0) problems.push(`the mount state still holds references: ${JSON.stringify([...held])}`);
}
