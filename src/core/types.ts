/** Domain types shared by the core and the backends; no wire (protocol) names here. */

export type Scope = "local" | "global";

/** Volume options exactly as the engine passed them (`-o key=value`). */
export type VolumeOptions = Readonly<Record<string, string>>;

/** Whether the storage can be used right now, and why not. */
export interface StorageHealth {
  /** "live" when volumes may be created and mounted. */
  state: string;
  detail: string;
}

/** One probe of a dependency: whether it works, its state word, and what to do if not. */
export interface ProbeResult {
  ok: boolean;
  /** mount: live, hung, dead, not-mounted, ...; api: ok, unauthenticated, unreachable, failing. */
  state: string;
  detail: string;
}

/** What a backend knows about one volume. */
export interface VolumeRecord {
  readonly name: string;
  /** Absolute host path the volume is reached at. */
  readonly mountpoint: string;
  /** Creation time (ISO 8601 / RFC 3339), when known. */
  readonly createdAt?: string;
  /** Backend facts for `docker volume inspect` (Status); never holds secrets. */
  readonly status: Readonly<Record<string, unknown>>;
}

export interface VolumeSummary {
  readonly name: string;
  readonly mountpoint: string;
}

/**
 * A storage backend: where volumes live and how they are created and deleted. Backends
 * receive names the core has already validated and run under the core's per-volume lock,
 * so they need no locking of their own for a single name.
 */
export interface Backend {
  /** Short identifier (`posix`, `quobyte`), shown in Status and logs. */
  readonly kind: string;
  readonly scope: Scope;
  /** Refuses names this backend cannot hold (beyond the core's rules); throws INVALID_NAME. */
  checkName?(name: string): void;
  /**
   * Where hosts sharing this storage publish their mount claims (a directory every host
   * sees); undefined when the storage is not shared. Read after init.
   */
  readonly claimsDir?: string;
  /** Option keys accepted by create; anything else is refused. */
  readonly optionNames: readonly string[];
  /** Verifies (and where it may, prepares) the storage before serving. */
  init(): Promise<void>;
  /**
   * Creates the volume, or does nothing when it exists already. `arrivedAt`
   * (performance.now() when the request arrived) bounds how old a storage health verdict
   * that admits it may be: one reached before the request may not.
   */
  create(name: string, options: VolumeOptions, arrivedAt?: number): Promise<void>;
  /** Deletes the volume and its data; a volume that does not exist is success. */
  remove(name: string): Promise<void>;
  /** The volume, or undefined when it does not exist. Never creates. */
  inspect(name: string): Promise<VolumeRecord | undefined>;
  list(): Promise<VolumeSummary[]>;
  /** Checks the volume is reachable and returns the path to hand to the engine. */
  prepareMount(name: string, arrivedAt?: number): Promise<string>;
  /** The storage mount's health, probed with a deadline (never hangs). */
  health(): Promise<StorageHealth>;
  /**
   * Backends with a management API: one cheap authenticated call, classified. Runs with
   * the API client's own deadline; the caller caches it.
   */
  checkApi?(): Promise<ProbeResult>;
  /** Releases resources (timers, connections). */
  close(): Promise<void>;
}
