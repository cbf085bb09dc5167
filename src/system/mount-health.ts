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

/**
 * Decides whether the host's single storage mount may be handed out. A stat of a frozen
 * FUSE mount never returns, so the probe runs with a deadline, at most one at a time:
 * while one is stuck, callers get "hung" at once instead of piling up threads that
 * would all block on the same mount.
 */
export class MountMonitor {
  private inFlight: Promise<MountHealth> | undefined;
  private inFlightSince = 0;
  private last: MountHealth | undefined;

  constructor(
    readonly path: string,
    readonly mode: MountCheckMode,
    private readonly probeTimeoutMs: number,
    /** Answers younger than this are reused: Mount bursts need one probe, not many. */
    private readonly cacheMs = 500,
    private readonly mountInfoFile = "/proc/self/mountinfo",
  ) {}

  /** The most recent result without probing (for Status). */
  get lastHealth(): MountHealth | undefined {
    return this.last;
  }

  /** Forgets a cached "live": an operation just saw the storage fail. */
  invalidate(): void {
    if (this.last?.state === "live") this.last = undefined;
  }

  /** `fresh` skips the cached answer: for rare operations that write (Create). */
  async check(options: { fresh?: boolean } = {}): Promise<MountHealth> {
    const now = Date.now();
    if (!options.fresh && this.last && this.last.state === "live" && now - this.last.checkedAt < this.cacheMs) return this.last;
    if (this.inFlight && now - this.inFlightSince >= this.probeTimeoutMs) return this.hung(now);
    if (!this.inFlight) {
      this.inFlightSince = now;
      this.inFlight = this.probe().then(
        (health) => {
          this.inFlight = undefined;
          this.last = health;
          return health;
        },
        (error: unknown) => {
          this.inFlight = undefined;
          const health: MountHealth = { state: "dead", detail: `${this.path}: ${String(error)}`, checkedAt: Date.now() };
          this.last = health;
          return health;
        },
      );
    }
    const remaining = this.probeTimeoutMs - (now - this.inFlightSince);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<MountHealth>((resolve) => {
      timer = setTimeout(() => resolve(this.hung(Date.now())), remaining);
    });
    try {
      return await Promise.race([this.inFlight, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private hung(now: number): MountHealth {
    const health: MountHealth = {
      state: "hung",
      detail: `${this.path} did not answer within ${this.probeTimeoutMs} ms (frozen or unreachable storage)`,
      checkedAt: now,
    };
    this.last = health;
    return health;
  }

  private async probe(): Promise<MountHealth> {
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
      const code = errnoCode(error);
      if (code === "ENOENT") return { state: "missing", detail: `${this.path} does not exist`, checkedAt };
      // ENOTCONN: the FUSE daemon behind the mount is gone.
      return { state: "dead", detail: `${this.path} is not usable (${code ?? String(error)}); remount it with mount-all`, checkedAt };
    }
    return { state: "live", detail: `${this.path} is live`, checkedAt };
  }
}
