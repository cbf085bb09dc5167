import type { Claims } from "./claims.ts";
import { Expiry, withDeadline } from "./deadline.ts";
import { PluginError } from "./errors.ts";
import { KeyedLock } from "./lock.ts";
import type { MountRefs } from "./mount-refs.ts";
import { validateVolumeName } from "./names.ts";
import type { Backend, Scope, StorageHealth, VolumeRecord, VolumeSummary } from "./types.ts";

export interface DriverOptions {
  /** Deadline for each operation, lock wait included (ms); 0 disables it. */
  timeoutMs: number;
  /** Overrides the backend's scope (`--scope`). */
  scope?: Scope;
  /** Mount claims on storage shared with other hosts; Remove then respects their mounts too. */
  claims?: Claims;
}

/** The longest mount ID we accept; the engine sends 64 hex characters. */
const MAX_MOUNT_ID_LENGTH = 256;

/**
 * The volume driver: the eight operations of the Docker volume protocol in domain terms.
 * It knows nothing of HTTP or the command line. Every operation on a name runs under that
 * name's lock, so Remove racing Mount sees either the mount or no volume, never half.
 */
export class Driver {
  readonly scope: Scope;
  private readonly lock = new KeyedLock();

  constructor(
    readonly backend: Backend,
    private readonly refs: MountRefs,
    private readonly options: DriverOptions,
  ) {
    this.scope = options.scope ?? backend.scope;
  }

  /** Creates a volume; creating an existing one succeeds and changes nothing. */
  async create(name: unknown, options: unknown): Promise<void> {
    const arrivedAt = performance.now();
    const volume = this.validName(name);
    const opts = validateOptions(options, this.backend.optionNames, volume);
    await this.locked(volume, "create", async () => {
      // A Mount elsewhere must not mistake the new volume for the one removed before.
      await this.options.claims?.clearTombstone(volume);
      await this.backend.create(volume, opts, arrivedAt);
    });
  }

  /** Deletes a volume and its data; refused while it is mounted on this host or, with claims, on another live host. */
  async remove(name: unknown): Promise<void> {
    const volume = this.validName(name);
    await this.locked(volume, "remove", async () => {
      const mounts = this.refs.count(volume);
      if (mounts > 0) {
        throw new PluginError(
          "VOLUME_IN_USE",
          `volume ${JSON.stringify(volume)} is in use by ${mounts} mount(s) on this host; stop the containers using it first`,
          { volume },
        );
      }
      const claims = this.options.claims;
      if (claims) await claims.guardRemove(volume, () => this.backend.remove(volume));
      else await this.backend.remove(volume);
    });
  }

  /**
   * Publishes this host's mounts (recorded before a restart) as claims and keeps them
   * fresh. Call once, before serving.
   */
  async startClaims(): Promise<void> {
    await this.options.claims?.start(this.refs.snapshot().keys(), {
      withVolumeLock: (volume, task) => this.lock.run(volume, task),
      isMountedHere: (volume) => this.refs.count(volume) > 0,
    });
  }

  async stopClaims(): Promise<void> {
    await this.options.claims?.stop();
  }

  /** Records a mount under `mountId` and returns the path for the container. */
  async mount(name: unknown, mountId: unknown): Promise<string> {
    const arrivedAt = performance.now();
    const volume = this.validName(name);
    const id = validateMountId(mountId, volume);
    return this.locked(volume, "mount", async (expiry) => {
      await this.require(volume);
      const path = await this.backend.prepareMount(volume, arrivedAt);
      const claims = this.options.claims;
      const first = this.refs.count(volume) === 0;
      if (claims && first) await claims.claimForMount(volume);
      try {
        // The engine already got a TIMEOUT and will never send Unmount for this ID:
        // recording the mount now would pin the volume forever.
        expiry.throwIfExpired();
        this.refs.add(volume, id);
      } catch (error) {
        if (claims && first) await claims.release(volume);
        throw error;
      }
      return path;
    });
  }

  /** Drops one mount under `mountId`; an ID we never saw is success (see MountRefs). */
  async unmount(name: unknown, mountId: unknown): Promise<void> {
    const volume = this.validName(name);
    const id = validateMountId(mountId, volume);
    await this.locked(volume, "unmount", async () => {
      if (this.refs.release(volume, id) && this.refs.count(volume) === 0) await this.options.claims?.release(volume);
    });
  }

  /** The path of a volume mounted on this host. */
  async path(name: unknown): Promise<string> {
    const volume = this.validName(name);
    return this.locked(volume, "path", async () => {
      const record = await this.require(volume);
      if (this.refs.count(volume) === 0) {
        throw new PluginError("NOT_MOUNTED", `volume ${JSON.stringify(volume)} is not mounted on this host`, {
          volume,
        });
      }
      return record.mountpoint;
    });
  }

  /** One volume with its Status; unknown names are an error and are never created. */
  async get(name: unknown): Promise<VolumeRecord> {
    const volume = this.validName(name);
    return this.locked(volume, "get", async () => {
      const record = await this.require(volume);
      return { ...record, status: { ...record.status, mounts: this.refs.count(volume) } };
    });
  }

  async list(): Promise<VolumeSummary[]> {
    return withDeadline(this.backend.list(), this.options.timeoutMs, "list");
  }

  capabilities(): { scope: Scope } {
    return { scope: this.scope };
  }

  /** The storage mount's health (probed with a deadline). */
  health(): Promise<StorageHealth> {
    return this.backend.health();
  }

  /** Every volume with its mounts on this host and its Status, for operators. */
  async report(): Promise<{ name: string; mounts: number; mountpoint: string; status: Record<string, unknown> }[]> {
    const out = [];
    for (const { name } of await this.list()) {
      try {
        const record = await this.get(name);
        out.push({ name, mounts: this.refs.count(name), mountpoint: record.mountpoint, status: { ...record.status } });
      } catch (error) {
        // Removed since List, or unreadable: show it with the reason instead of failing the report.
        out.push({ name, mounts: this.refs.count(name), mountpoint: "", status: { error: String(error) } });
      }
    }
    return out;
  }

  /** Active mounts per volume on this host. */
  mounts(): Map<string, number> {
    return this.refs.snapshot();
  }

  /** The core's name rules, then the backend's own. */
  private validName(name: unknown): string {
    const volume = validateVolumeName(name);
    this.backend.checkName?.(volume);
    return volume;
  }

  private async require(volume: string): Promise<VolumeRecord> {
    const record = await this.backend.inspect(volume);
    if (!record) {
      throw new PluginError("VOLUME_NOT_FOUND", `volume ${JSON.stringify(volume)} does not exist`, { volume });
    }
    return record;
  }

  private locked<T>(volume: string, what: string, task: (expiry: Expiry) => Promise<T>): Promise<T> {
    const expiry = new Expiry();
    return withDeadline(
      this.lock.run(volume, () => task(expiry)),
      this.options.timeoutMs,
      () => `${what} of volume ${JSON.stringify(volume)}`,
      volume,
      expiry,
    );
  }
}

function validateMountId(id: unknown, volume: string): string {
  if (typeof id !== "string" || id.length === 0 || id.length > MAX_MOUNT_ID_LENGTH) {
    throw new PluginError("INVALID_REQUEST", `mount ID must be a non-empty string of at most ${MAX_MOUNT_ID_LENGTH} characters`, {
      volume,
    });
  }
  return id;
}

/** Opts arrive as null, {} or a map of strings; anything else is refused before any work. */
function validateOptions(options: unknown, allowed: readonly string[], volume: string): Record<string, string> {
  if (options === null || options === undefined) return {};
  if (typeof options !== "object" || Array.isArray(options)) {
    throw new PluginError("INVALID_OPTION", "volume options must be an object of strings", { volume });
  }
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(options)) {
    if (!allowed.includes(key)) {
      throw new PluginError(
        "INVALID_OPTION",
        `unknown volume option ${JSON.stringify(key)}; allowed options: ${allowed.join(", ")}`,
        { volume },
      );
    }
    if (typeof value !== "string") {
      throw new PluginError("INVALID_OPTION", `volume option ${JSON.stringify(key)} must be a string`, { volume });
    }
    out[key] = value;
  }
  return out;
}
