import { lstatSync, statSync } from "node:fs";
import { stat, statfs } from "node:fs/promises";
import { errnoCode } from "../core/errors.ts";
import { isQuobyteMount, mountAt } from "./mountinfo.ts";

/** What "the single mount is live" means (`--mount-check`). */
export type MountCheckMode = "quobyte" | "mountpoint" | "none";
export const MOUNT_CHECK_MODES = ["quobyte", "mountpoint", "none"] as const;

export type MountState = "live" | "not-mounted" | "wrong-filesystem" | "dead" | "hung" | "missing";

export interface MountHealth {
  state: MountState;
  /** Human explanation, for Err texts and Status. */
  detail: string;
  checkedAt: number;
}

interface Probe {
  /** performance.now() when the probe started: it may admit requests that arrived before. */
  startedAt: number;
  result: Promise<MountHealth>;
}

/**
 * Decides whether the host's single storage mount may be handed out, for each request
 * anew: a verdict reached before a request arrived may not admit it (the storage may
 * have died since). Requests share a probe that started after they arrived (single
 * flight), so a burst of Mounts costs one probe.
 *
 * A stat of a frozen FUSE mount never returns, so the probe runs with a deadline, at most
 * one at a time: while one is stuck past its deadline, callers get "hung" at once instead
 * of piling up threads that would all block on the same mount.
 */
export class MountMonitor {
  private inFlight: Probe | undefined;
  /** The probe that starts when the one in flight ends; requests arriving meanwhile wait for it. */
  private queued: Probe | undefined;
  private last: { startedAt: number; health: MountHealth } | undefined;
  /** st_dev of the path while it is known to be on a local filesystem (see probeLocally). */
  private localDevice: number | undefined;

  constructor(
    readonly path: string,
    readonly mode: MountCheckMode,
    private readonly probeTimeoutMs: number,
    private readonly mountInfoFile = "/proc/self/mountinfo",
  ) {}

  /** The most recent result without probing (for Get, List and Status). */
  get lastHealth(): MountHealth | undefined {
    return this.last?.health;
  }

  /**
   * Declares the path to be on a local filesystem (ext4, xfs, tmpfs...), whose stat
   * answers from the kernel and never waits on a daemon or a network. With no mount check
   * to make, each probe is then one synchronous stat: no thread-pool round trip, no timer,
   * no promise of its own (that was most of a Mount's cost on the default setup), and no
   * statfs, which is only there for FUSE's attribute cache.
   * If the path later resolves to another device (something was mounted over it), this
   * stops at once and probes go back to the asynchronous path with its deadline.
   */
  markLocal(device: number): void {
    if (this.mode === "none") this.localDevice = device;
  }

  /** Forgets a "live" verdict: an operation just saw the storage fail. */
  invalidate(): void {
    if (this.last?.health.state === "live") this.last = undefined;
  }

  /**
   * The storage's health as seen by a probe that started at or after `arrivedAt`
   * (performance.now() when the request arrived); answers within the probe deadline.
   */
  async check(arrivedAt = performance.now()): Promise<MountHealth> {
    if (this.last && this.last.startedAt >= arrivedAt) return this.last.health;
    const local = this.checkLocally();
    if (local) return local;
    const now = performance.now();
    const running = this.inFlight;
    // Still stuck past its deadline: the storage hangs now, whenever that probe began.
    if (running && now - running.startedAt >= this.probeTimeoutMs) return this.hung(running.startedAt);
    const joined = running !== undefined && running.startedAt >= arrivedAt;
    const probe = joined ? running : running ? this.queuedAfter(running) : this.start();
    // A joined probe keeps its own deadline; a new or queued one gets a full one from now
    // (a queued probe waits for the running one, but the caller never waits past this).
    const remaining = this.probeTimeoutMs - (joined ? now - running.startedAt : 0);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<MountHealth>((resolve) => {
      timer = setTimeout(() => resolve(this.hung(probe.startedAt)), Math.max(0, remaining));
    });
    try {
      return await Promise.race([probe.result, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private start(): Probe {
    const startedAt = performance.now();
    const result = this.probe().catch(
      (error: unknown): MountHealth => ({ state: "dead", detail: `${this.path}: ${String(error)}`, checkedAt: Date.now() }),
    );
    const probe: Probe = { startedAt, result };
    this.inFlight = probe;
    void result.then((health) => {
      if (this.inFlight === probe) this.inFlight = undefined;
      if (!this.last || this.last.startedAt <= startedAt) this.last = { startedAt, health };
    });
    return probe;
  }

  /** One probe for everyone who arrived after `running` began; it starts when `running` ends. */
  private queuedAfter(running: Probe): Probe {
    if (this.queued) return this.queued;
    let begin!: (probe: Probe) => void;
    const started = new Promise<Probe>((resolve) => (begin = resolve));
    const queued: Probe = {
      // Replaced by the real start; until then, a lower bound of it for the "hung" verdict.
      startedAt: performance.now(),
      result: started.then((probe) => probe.result),
    };
    this.queued = queued;
    void running.result.then(() => {
      this.queued = undefined;
      const probe = this.start();
      queued.startedAt = probe.startedAt;
      begin(probe);
    });
    return queued;
  }

  private hung(startedAt: number): MountHealth {
    const health: MountHealth = {
      state: "hung",
      detail: `${this.path} did not answer within ${this.probeTimeoutMs} ms (frozen or unreachable storage)`,
      checkedAt: Date.now(),
    };
    if (!this.last || this.last.startedAt <= startedAt) this.last = { startedAt, health };
    return health;
  }

  /**
   * One lstat of `entry`, a directory right under the path, in place of a probe: when it
   * is a real directory (not a symlink) on the path's own local filesystem, the path is
   * there and live now, and that is recorded like a probe's verdict. A Mount's check of
   * its volume directory thus doubles as the storage probe. False when it proves nothing
   * (missing, a symlink, another device, a path not declared local): the caller then
   * makes the full checks, which also say what is wrong.
   */
  confirmsLive(entry: string): boolean {
    if (this.localDevice === undefined || this.inFlight) return false;
    const startedAt = performance.now();
    try {
      const info = lstatSync(entry);
      if (info.dev !== this.localDevice || !info.isDirectory()) return false;
    } catch {
      return false;
    }
    this.last = { startedAt, health: this.live(Date.now()) };
    return true;
  }

  /**
   * A verdict reached now, synchronously, on a path declared local (markLocal); undefined
   * when the path is not (or no longer) local, or an asynchronous probe is still out.
   */
  checkLocally(): MountHealth | undefined {
    return this.localDevice !== undefined && !this.inFlight ? this.probeLocally() : undefined;
  }

  /** The probe on a local filesystem, done now; undefined when the path is no longer local. */
  private probeLocally(): MountHealth | undefined {
    const startedAt = performance.now();
    const checkedAt = Date.now();
    let health: MountHealth;
    try {
      const info = statSync(this.path);
      if (info.dev !== this.localDevice) {
        this.localDevice = undefined;
        return undefined;
      }
      health = info.isDirectory() ? this.live(checkedAt) : { state: "missing", detail: `${this.path} is not a directory`, checkedAt };
    } catch (error) {
      health = this.failed(error, checkedAt);
    }
    this.last = { startedAt, health };
    return health;
  }

  private live(checkedAt: number): MountHealth {
    return { state: "live", detail: `${this.path} is live`, checkedAt };
  }

  private failed(error: unknown, checkedAt: number): MountHealth {
    const code = errnoCode(error);
    if (code === "ENOENT") return { state: "missing", detail: `${this.path} does not exist`, checkedAt };
    // ENOTCONN: the FUSE daemon behind the mount is gone.
    return { state: "dead", detail: `${this.path} is not usable (${code ?? String(error)}); remount it with mount-all`, checkedAt };
  }

  /** One look at the storage; protected so a test can count and pace probes. */
  protected async probe(): Promise<MountHealth> {
    const checkedAt = Date.now();
    if (this.mode !== "none") {
      const entry = await mountAt(this.path, this.mountInfoFile);
      if (!entry) {
        return {
          state: "not-mounted",
          detail: `nothing is mounted at ${this.path}; run \`docker-quobyte-plugin mount-all\` (data written there would land on the host's root disk)`,
          checkedAt,
        };
      }
      if (this.mode === "quobyte" && !isQuobyteMount(entry)) {
        return {
          state: "wrong-filesystem",
          detail: `${this.path} holds ${entry.fsType} from ${entry.source}, not a Quobyte client mount (fuse.quobyte)`,
          checkedAt,
        };
      }
    }
    try {
      const info = await stat(this.path);
      if (!info.isDirectory()) return { state: "missing", detail: `${this.path} is not a directory`, checkedAt };
      // stat of a FUSE mount root may be answered from the kernel's attribute cache
      // after the daemon died or froze; statfs always asks the daemon.
      await statfs(this.path);
    } catch (error) {
      return this.failed(error, checkedAt);
    }
    return this.live(checkedAt);
  }
}
