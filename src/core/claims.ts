import { lstat, mkdir, readdir, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { crashPoint } from "../system/crash-point.ts";
import { createFileExclusive, readFileNoFollow, removeStaleTempFiles, writeFileAtomic } from "../system/atomic-file.ts";
import { errnoCode, messageOf, PluginError } from "./errors.ts";
import { LeaseObserver } from "./lease-observer.ts";

/** A host id is one path component on the shared storage. */
const HOST_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const FILE_MODE = 0o644;

export interface ClaimsOptions {
  /** Directory on the storage every host shares (created when missing). */
  dir: string;
  hostId: string;
  /** A host whose heartbeat stands still this long no longer pins volumes (ms). */
  leaseTimeoutMs: number;
  /** Monotonic milliseconds (tests pass a fake clock). */
  now?: () => number;
  /** Problems that must not fail a request (a claim that could not be dropped yet). */
  warn?: (message: string, fields?: Record<string, unknown>) => void;
}

/** What the driver lends the claims for background repairs: its lock and its mount counts. */
export interface ClaimsHost {
  withVolumeLock<T>(volume: string, task: () => Promise<T>): Promise<T>;
  isMountedHere(volume: string): boolean;
}

/** Another host that has the volume mounted. */
export interface Holder {
  host: string;
  /** When that host claimed it, by that host's clock (shown to people, never compared). */
  since: string;
}

export function isValidHostId(id: string): boolean {
  return HOST_ID.test(id);
}

/**
 * Mount claims on shared storage, so that a Remove on one host can see that another
 * host has the volume mounted. Layout under `dir`:
 *
 *   hosts/<host>             the host's heartbeat: a token and a counter, rewritten every lease/4
 *   mounts/<host>/<volume>   the host has the volume mounted (an empty file, created on its first mount, dropped on its last)
 *   removing/<volume>        a Remove is deciding; Mounts elsewhere back off
 *   removed/<volume>         a tombstone: the volume was removed less than a lease ago
 *
 * Remove racing Mount on another host follows the two-flag pattern: Mount writes its
 * claim, then looks for a removal marker; Remove creates the marker, then looks for
 * claims. Whichever looks last sees the other's flag, so the data is never deleted
 * under a mount that was answered.
 *
 * Claims are not fsynced: only a crash of this host's kernel could lose one, and that
 * crash ends the containers the claim protected.
 */
export class Claims {
  readonly hostId: string;
  readonly periodMs: number;
  private readonly observer: LeaseObserver;
  private readonly token = crypto.randomUUID();
  private beats = 0;
  private lastBeat: string | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  private ticking: Promise<void> | undefined;
  /** Volumes whose claim could not be written or dropped; retried every period. */
  private readonly repairs = new Set<string>();
  private host: ClaimsHost | undefined;
  /** Tombstones as first seen by this process: content and when (monotonic). */
  private readonly tombstones = new Map<string, { text: string; seenAt: number }>();
  private readonly now: () => number;

  constructor(private readonly options: ClaimsOptions) {
    if (!isValidHostId(options.hostId)) {
      throw new PluginError("INVALID_REQUEST", `host id ${JSON.stringify(options.hostId)} must be letters, digits, "_", "." or "-" (at most 64)`);
    }
    this.hostId = options.hostId;
    this.now = options.now ?? (() => performance.now());
    this.observer = new LeaseObserver(options.leaseTimeoutMs, this.now);
    // Far above the 1 s attribute caches of network filesystems, far below the lease.
    this.periodMs = Math.max(250, Math.floor(options.leaseTimeoutMs / 4));
  }

  private get hostsDir(): string {
    return join(this.options.dir, "hosts");
  }
  private get ownMountsDir(): string {
    return join(this.options.dir, "mounts", this.hostId);
  }
  private get removingDir(): string {
    return join(this.options.dir, "removing");
  }
  private get removedDir(): string {
    return join(this.options.dir, "removed");
  }

  /**
   * Before serving: publishes a heartbeat, drops this host's stale removal markers,
   * re-claims the volumes still mounted here (the mount state survived a restart) and
   * drops claims for volumes no longer mounted. Then refreshes every period.
   */
  async start(mounted: Iterable<string>, host: ClaimsHost): Promise<void> {
    this.host = host;
    const want = new Set(mounted);
    // Hosts starting together on a fresh root race to create the directories; a client
    // that lost the race may for a moment not find the winner's directory (GlusterFS
    // answered a listing with ENOENT right after lstat saw it). Every step is idempotent.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.publish(want);
        break;
      } catch (error) {
        if (errnoCode(error) === "ENOENT" && attempt < START_ATTEMPTS) {
          await new Promise((resolve) => setTimeout(resolve, 100));
          continue;
        }
        throw new PluginError("BACKEND_FAILED", `cannot publish this host's mount claims in ${this.options.dir}: ${messageOf(error)}`, { cause: error });
      }
    }
    this.timer = setInterval(() => {
      this.ticking ??= this.tick().finally(() => {
        this.ticking = undefined;
      });
    }, this.periodMs);
  }

  /** The start's steps: directories, heartbeat, own markers dropped, own claims re-made. */
  private async publish(want: Set<string>): Promise<void> {
    for (const dir of [this.options.dir, this.hostsDir, join(this.options.dir, "mounts"), this.ownMountsDir, this.removingDir, this.removedDir]) {
      await ensureDirectory(dir);
    }
    for (const dir of [this.hostsDir, this.ownMountsDir, this.removingDir, this.removedDir]) await removeStaleTempFiles(dir);
    await this.beat();
    for (const volume of await readdir(this.removingDir)) {
      if (volume.startsWith(".")) continue;
      const marker = await this.readRecord(this.removingDir, volume, false);
      if (marker?.host === this.hostId) await unlink(join(this.removingDir, volume)).catch(() => {});
    }
    for (const volume of await readdir(this.ownMountsDir)) {
      if (!volume.startsWith(".") && !want.has(volume)) await unlink(join(this.ownMountsDir, volume));
    }
    for (const volume of want) await this.writeClaim(volume);
    await this.observeAll();
  }

  /** Stops refreshing. A refresh stuck on hung storage is not waited for beyond a second. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    if (this.ticking) await Promise.race([this.ticking, new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
  }

  /**
   * The first mount of `volume` on this host: publish the claim, then check for a removal
   * in progress elsewhere. If one is, the claim is withdrawn and the Mount refused.
   */
  async claimForMount(volume: string): Promise<void> {
    try {
      await this.writeClaim(volume);
    } catch (error) {
      // Unpublished, another host could delete the data under this mount: refuse.
      throw new PluginError("BACKEND_FAILED", `cannot record the mount of volume ${JSON.stringify(volume)} on the shared storage: ${messageOf(error)}`, {
        cause: error,
        volume,
      });
    }
    crashPoint("claims-mount:claimed");
    let refusal: string | undefined;
    try {
      const marker = await this.readMarker(volume);
      if (marker?.removed) {
        // The volume went away before this Mount claimed it, and this host's view of the
        // storage was a moment old (name caches): there is nothing left to mount.
        refusal = `volume ${JSON.stringify(volume)} was removed by host ${marker.host} (at ${marker.since})`;
      } else if (marker && marker.host !== this.hostId && (await this.isAlive(marker.host))) {
        refusal = `volume ${JSON.stringify(volume)} is being removed by host ${marker.host} (since ${marker.since})`;
      }
    } catch (error) {
      // Unable to rule out a Remove elsewhere: the Mount must not go ahead on a guess.
      await this.release(volume);
      throw new PluginError("BACKEND_FAILED", `cannot check whether volume ${JSON.stringify(volume)} is being removed: ${messageOf(error)}`, {
        cause: error,
        volume,
      });
    }
    if (refusal) {
      await this.release(volume);
      throw new PluginError("BACKEND_FAILED", refusal, { volume });
    }
  }

  /** A Create of `volume` ends the tombstone a Remove left (see guardRemove). */
  async clearTombstone(volume: string): Promise<void> {
    try {
      await unlink(join(this.removedDir, volume));
    } catch (error) {
      if (errnoCode(error) !== "ENOENT") {
        throw new PluginError("BACKEND_FAILED", `cannot clear the removal record of volume ${JSON.stringify(volume)}: ${messageOf(error)}`, { cause: error, volume });
      }
    }
  }

  /** The last mount of `volume` on this host ended; a failure is retried in the background. */
  async release(volume: string): Promise<void> {
    try {
      await unlink(join(this.ownMountsDir, volume));
      this.repairs.delete(volume);
    } catch (error) {
      if (errnoCode(error) === "ENOENT") {
        this.repairs.delete(volume);
        return;
      }
      this.repairs.add(volume);
      this.options.warn?.(`cannot drop the mount claim of volume ${JSON.stringify(volume)}; retrying every ${this.periodMs} ms`, {
        volume,
        error: messageOf(error),
      });
    }
  }

  /**
   * Runs `remove` only while no other live host claims `volume`. The removal marker is
   * created first, so a Mount elsewhere that starts now backs off. A refused or failed
   * Remove drops it; a finished one first leaves a tombstone for one lease, because a
   * host whose cached view still shows the volume could otherwise answer a Mount of it.
   */
  async guardRemove(volume: string, remove: () => Promise<void>): Promise<void> {
    await this.placeMarker(volume);
    crashPoint("claims-remove:marked");
    let removed = false;
    try {
      const holders = await this.liveHolders(volume);
      if (holders.length > 0) {
        const who = holders.map((h) => `${h.host} (since ${h.since})`).join(", ");
        throw new PluginError(
          "VOLUME_IN_USE",
          `volume ${JSON.stringify(volume)} is mounted on host(s) ${who}; stop the containers using it there first ` +
            `(a host that stops refreshing its claim for ${this.options.leaseTimeoutMs / 1000} s no longer counts)`,
          { volume },
        );
      }
      await remove();
      removed = true;
    } finally {
      // The tombstone goes up before the marker comes down: no moment without either.
      if (removed) await writeFileAtomic(join(this.removedDir, volume), this.markerRecord(), FILE_MODE, { durable: false }).catch(() => {});
      await unlink(join(this.removingDir, volume)).catch(() => {});
    }
  }

  private markerRecord(): string {
    return `${JSON.stringify({ host: this.hostId, since: new Date().toISOString() })}\n`;
  }

  /**
   * Other hosts whose claim on `volume` is alive, read afresh from the storage. Presence
   * is judged by listing the host's claims directory, not by opening the claim: network
   * filesystem clients cache names (GlusterFS for 1 s), but a listing asks the server.
   */
  async liveHolders(volume: string): Promise<Holder[]> {
    const out: Holder[] = [];
    for (const host of await readdir(join(this.options.dir, "mounts"))) {
      if (host === this.hostId || !isValidHostId(host)) continue;
      const dir = join(this.options.dir, "mounts", host);
      const listed: string[] = await readdir(dir).catch((error: unknown): string[] => {
        // Another host's claims directory replaced by a file: it holds no claims.
        if (errnoCode(error) === "ENOTDIR") return [];
        throw error;
      });
      if (!listed.includes(volume) || !(await this.isAlive(host))) continue;
      const since = await lstat(join(dir, volume)).then((info) => info.mtime.toISOString(), () => "unknown");
      out.push({ host, since });
    }
    return out;
  }

  private async placeMarker(volume: string): Promise<void> {
    const path = join(this.removingDir, volume);
    const record = this.markerRecord();
    for (let attempt = 0; attempt < 3; attempt++) {
      if (await createFileExclusive(path, record, FILE_MODE)) return;
      const marker = await this.readRecord(this.removingDir, volume, false);
      if (marker === undefined) continue; // dropped in between: try again
      if (marker.host !== this.hostId && (await this.isAlive(marker.host))) {
        throw new PluginError("VOLUME_IN_USE", `volume ${JSON.stringify(volume)} is being removed by host ${marker.host} (since ${marker.since})`, {
          volume,
        });
      }
      // Left by a host that died while removing (or by us before a restart): take it over.
      await writeFileAtomic(path, record, FILE_MODE, { durable: false });
      return;
    }
    throw new PluginError("VOLUME_IN_USE", `volume ${JSON.stringify(volume)} is being removed by another host right now`, { volume });
  }

  /**
   * The removal marker of `volume`; listed first, for the same reason as in liveHolders.
   * One that is listed but cannot be read (replaced a moment ago) counts as a Remove
   * by an unknown host: live until a lease passes.
   */
  private async readMarker(volume: string): Promise<Marker | undefined> {
    return (await this.readRecord(this.removingDir, volume, false)) ?? (await this.readRecord(this.removedDir, volume, true));
  }

  private async readRecord(dir: string, volume: string, removed: boolean): Promise<Marker | undefined> {
    if (!(await readdir(dir)).includes(volume)) return undefined;
    const text = await readFileNoFollow(join(dir, volume)).catch(() => undefined);
    const record = text === undefined ? undefined : parseRecord(text);
    if (!record || typeof record.host !== "string") return { host: "unknown", since: "unknown", removed };
    return { host: record.host, since: record.since ?? "unknown", removed };
  }

  /**
   * A claim is an empty file: one create on the Mount path (exclusive, so a symlink planted
   * in its place is never followed), nothing that could be torn, and its mtime tells since when.
   */
  private async writeClaim(volume: string): Promise<void> {
    try {
      await writeFile(join(this.ownMountsDir, volume), "", { flag: "wx", mode: FILE_MODE });
    } catch (error) {
      if (errnoCode(error) !== "EEXIST") throw error;
    }
  }

  /** Reads `host`'s heartbeat now and judges it by how long it has stood still. */
  private async isAlive(host: string): Promise<boolean> {
    if (!isValidHostId(host)) return false;
    this.observer.observe(host, await readFileNoFollow(join(this.hostsDir, host)).catch(() => undefined));
    return this.observer.alive(host);
  }

  private async beat(): Promise<void> {
    const path = join(this.hostsDir, this.hostId);
    if (this.lastBeat !== undefined) {
      const found = await readFileNoFollow(path).catch(() => undefined);
      if (found !== undefined && found !== this.lastBeat) {
        this.options.warn?.(
          `another process writes the heartbeat of host id ${JSON.stringify(this.hostId)}: two hosts share this id and cannot see each other's mounts; give each host its own --host-id`,
        );
      }
    }
    this.beats++;
    const value = `${this.token} ${this.beats}\n`;
    await writeFileAtomic(path, value, FILE_MODE, { durable: false });
    this.lastBeat = value;
  }

  /** Watches every host's heartbeat, so that a lease runs from the last change we saw. */
  private async observeAll(): Promise<void> {
    for (const host of await readdir(this.hostsDir)) {
      if (host !== this.hostId && isValidHostId(host)) await this.isAlive(host);
    }
  }

  /** Deletes tombstones that stood unchanged for a lease of our clock: every cache is past them. */
  private async sweepTombstones(): Promise<void> {
    const now = this.now();
    const present = new Set<string>();
    for (const volume of await readdir(this.removedDir)) {
      if (volume.startsWith(".")) continue;
      present.add(volume);
      const path = join(this.removedDir, volume);
      const text = (await readFileNoFollow(path).catch(() => undefined)) ?? "";
      const seen = this.tombstones.get(volume);
      if (!seen || seen.text !== text) this.tombstones.set(volume, { text, seenAt: now });
      else if (now - seen.seenAt >= this.options.leaseTimeoutMs) {
        await unlink(path).catch(() => {});
        this.tombstones.delete(volume);
      }
    }
    for (const volume of this.tombstones.keys()) if (!present.has(volume)) this.tombstones.delete(volume);
  }

  private async tick(): Promise<void> {
    try {
      await this.beat();
      await this.observeAll();
      await this.sweepTombstones();
    } catch (error) {
      this.options.warn?.(`cannot refresh this host's heartbeat in ${this.hostsDir}`, { error: messageOf(error) });
    }
    for (const volume of [...this.repairs]) {
      const host = this.host;
      if (!host) break;
      await host
        .withVolumeLock(volume, async () => {
          if (host.isMountedHere(volume)) {
            await this.writeClaim(volume);
            this.repairs.delete(volume);
          } else {
            await this.release(volume);
          }
        })
        .catch(() => {});
    }
  }
}

interface Marker {
  host: string;
  since: string;
  /** A tombstone: the Remove finished. */
  removed: boolean;
}

function parseRecord(text: string): { host?: unknown; since?: string } | undefined {
  try {
    const value = JSON.parse(text) as { host?: unknown; since?: unknown };
    return { host: value.host, since: typeof value.since === "string" ? value.since : undefined };
  } catch {
    return undefined;
  }
}

/** How often a start retries when a directory another host just made is not visible yet (100 ms apart). */
const START_ATTEMPTS = 30;

/**
 * Creates `dir` unless it exists, and refuses a symlink or file in its place. A host that
 * lost the race to create it may not see the winner's directory for a moment (EEXIST,
 * then ENOENT): `start` retries its steps for that.
 */
async function ensureDirectory(dir: string): Promise<void> {
  await mkdir(dir, { mode: 0o755 }).catch((error: unknown) => {
    if (errnoCode(error) !== "EEXIST") throw error;
  });
  const info = await lstat(dir);
  if (info.isSymbolicLink() || !info.isDirectory()) throw new Error(`${dir} must be a directory, not a symlink or file`);
}
