import { messageOf, PluginError } from "../../core/errors.ts";
import type { Logger } from "../../logging.ts";
import type { ApiVolume, QuobyteApi, Tenant } from "../../quobyte/api.ts";
import { QuobyteRpcError } from "../../quobyte/rpc-error.ts";
import type { CatalogFile } from "./catalog-file.ts";
import { CONTROL_VOLUME } from "./control-volume.ts";
import { decodeLabel, PLUGIN_LABEL, type PluginLabel } from "./volume-label.ts";

/** A volume as the API last described it. */
export interface CatalogEntry extends ApiVolume {
  /** This cluster's label: present exactly when the volume is managed by this plugin. */
  label?: PluginLabel;
  /** performance.now() when the API last confirmed the volume. */
  confirmedAt: number;
}

export interface VolumeCatalogOptions {
  api: QuobyteApi;
  file: CatalogFile;
  /** The plugin's default tenant as configured (name or UUID). */
  tenantRef: string;
  resolveTenant: (ref: string) => Promise<Tenant>;
  /** A volume confirmed by the API this recently is answered without asking again. */
  ttlMs: number;
  /** How long a request waits for a refresh before answering from the cache. */
  waitMs: number;
  /** The first refresh after a start with a cache happens at a random moment within this. */
  jitterMs: number;
  log: Logger;
}

/**
 * A refresh under way since at most this long before a request for a stale volume is new
 * enough for it: a burst of such requests shares one refresh.
 */
const JOIN_MS = 250;
/** Labels change only on create, adopt and keep-remove: re-read them this many TTLs apart at most. */
const LABEL_TTLS = 3;
/**
 * Pause after a failed refresh, doubling up to the cap and spread at random: a down API
 * is not hammered, and a thousand hosts do not all come back in the same second.
 */
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 15_000;

/**
 * Every volume of the default tenant (and this cluster's volumes elsewhere) as the API
 * describes them, with this plugin's label. The API is the truth; this is a cache with a
 * TTL, so a thousand hosts asking about the same volumes cost the API one call per host
 * per TTL, not one per request. One refresh (getVolumeList, plus getLabels when volumes
 * appeared or the labels are old) confirms every volume at once.
 */
export class VolumeCatalog {
  private byName = new Map<string, CatalogEntry>();
  /** UUID -> this cluster's label, or null for a volume known to carry none. */
  private labels = new Map<string, PluginLabel | null>();
  private labelsAt = Number.NEGATIVE_INFINITY;
  /** performance.now() when the last successful refresh began: what it saw is at least this fresh. */
  private refreshedAt = Number.NEGATIVE_INFINITY;
  private home: Tenant | undefined;
  private failure: { since: string; message: string } | undefined;
  private failures = 0;
  private retryAt = 0;
  private inflight: Promise<void> | undefined;
  private inflightStarted = Number.NEGATIVE_INFINITY;
  /** Names this host created or removed since a refresh began: its answer must not undo them. */
  private localChanges = new Map<string, number>();
  private jitter: ReturnType<typeof setTimeout> | undefined;
  /** Settles once the jittered first refresh after a clean restart is done (or cancelled). */
  private firstRefresh: Promise<void> = Promise.resolve();
  private endJitter: () => void = () => {};
  /** The last refresh's outcome: when it began, and its error if it failed. */
  private lastOutcome: { at: number; error?: unknown } | undefined;
  private everConfirmed = false;

  constructor(private readonly options: VolumeCatalogOptions) {}

  /**
   * Loads the cache file. After a clean stop its volumes count as confirmed now, and the
   * first refresh is put at a random moment within the jitter window: after a cluster-wide
   * restart the hosts answer the engines from their caches and spread their calls on the
   * API. After a crash the file may lag behind the API: the first request asks.
   */
  async load(): Promise<void> {
    const snapshot = await this.options.file.read();
    if (!snapshot || snapshot.tenant.ref !== this.options.tenantRef) return;
    this.home = { id: snapshot.tenant.id, name: snapshot.tenant.name };
    this.everConfirmed = true;
    const now = snapshot.clean ? performance.now() : Number.NEGATIVE_INFINITY;
    this.install(snapshot.volumes.map((volume) => ({ ...volume, confirmedAt: now })));
    // Marks the file unclean until the next clean stop.
    await this.persist();
    if (!snapshot.clean) return;
    this.refreshedAt = now;
    for (const volume of snapshot.volumes) this.labels.set(volume.uuid, volume.label ?? null);
    this.labelsAt = now;
    const delay = Math.random() * this.options.jitterMs;
    this.firstRefresh = new Promise<void>((resolve) => (this.endJitter = resolve));
    this.jitter = setTimeout(() => {
      this.jitter = undefined;
      void this.refresh().finally(this.endJitter);
    }, delay);
    this.jitter.unref?.();
  }

  /**
   * For health checks: undefined when the API answered a refresh begun at most `reuseMs`
   * ago (a new refresh otherwise), else that refresh's error. Waits for the jittered first
   * refresh after a clean restart, so health probes do not undo the spreading.
   */
  async probe(reuseMs: number): Promise<unknown> {
    await this.firstRefresh;
    if (!this.lastOutcome || performance.now() - this.lastOutcome.at >= reuseMs) await this.refresh();
    return this.lastOutcome?.error;
  }

  /** The plugin's default tenant, resolved once (or known from the cache file). */
  async homeTenant(): Promise<Tenant> {
    this.home ??= await this.options.resolveTenant(this.options.tenantRef);
    return this.home;
  }

  /** The tenant when it is known without asking the API. */
  knownHome(): Tenant | undefined {
    return this.home;
  }

  /**
   * The volume called `name`: from the cache while the API confirmed it within the TTL,
   * else after a refresh (waiting at most waitMs, then the cache answers).
   */
  async lookup(name: string): Promise<CatalogEntry | undefined> {
    const arrived = performance.now();
    const entry = this.byName.get(name);
    if (entry && arrived - entry.confirmedAt < this.options.ttlMs) return entry;
    // A name this host does not know may have been made elsewhere a moment ago: only a
    // refresh begun after the request counts, and without a cached answer there is
    // nothing to answer early with: wait for the API.
    if (entry) await this.fresh(arrived - JOIN_MS, this.options.waitMs);
    else await this.fresh(arrived, Number.POSITIVE_INFINITY);
    const found = this.byName.get(name);
    if (!found && this.failure) {
      // "Does not exist" would be a guess: it may have been made elsewhere meanwhile.
      throw new PluginError("BACKEND_FAILED", `cannot tell whether volume ${JSON.stringify(name)} exists: ${this.failure.message}`, { volume: name });
    }
    return found;
  }

  /**
   * Every volume, refreshed first when the last refresh is older than the TTL. Never
   * fails: without the API it is what the cache holds (health says why).
   */
  async all(): Promise<CatalogEntry[]> {
    const arrived = performance.now();
    if (arrived - this.refreshedAt >= this.options.ttlMs) await this.fresh(arrived - JOIN_MS, this.options.waitMs);
    return [...this.byName.values()];
  }

  /**
   * Asks the API about one volume (Mount's check). "gone" drops it here at once; "unknown"
   * means the API could not answer (the caller decides whether the cache may stand in).
   */
  async confirm(entry: CatalogEntry): Promise<"present" | "gone" | "unknown"> {
    // The API failed moments ago: do not make this request wait for it again.
    if (this.failure && performance.now() < this.retryAt) return "unknown";
    let found: ApiVolume | undefined;
    try {
      [found] = await this.options.api.volumes(entry.tenantId, [entry.uuid]);
    } catch (error) {
      if (!isUnreachable(error)) throw error;
      this.noteFailure(error);
      return "unknown";
    }
    if (!found || found.name !== entry.name) {
      await this.forget(entry.name);
      return "gone";
    }
    await this.put({ ...found, label: entry.label });
    return "present";
  }

  /** Forgets what the API said: the next request asks again (labels included). */
  invalidate(): void {
    this.refreshedAt = Number.NEGATIVE_INFINITY;
    this.labelsAt = Number.NEGATIVE_INFINITY;
    for (const entry of this.byName.values()) entry.confirmedAt = Number.NEGATIVE_INFINITY;
  }

  /** Records a volume this host just created, adopted or confirmed. */
  async put(volume: ApiVolume & { label?: PluginLabel }): Promise<void> {
    const now = performance.now();
    this.localChanges.set(volume.name, now);
    this.byName.set(volume.name, { ...volume, confirmedAt: now });
    this.labels.set(volume.uuid, volume.label ?? null);
    await this.persist();
  }

  /** Drops a volume this host removed (or the API said is gone). */
  async forget(name: string): Promise<void> {
    const entry = this.byName.get(name);
    this.localChanges.set(name, performance.now());
    this.byName.delete(name);
    if (entry) this.labels.delete(entry.uuid);
    await this.persist();
  }

  /** A volume this host released (on_remove=keep): still in Quobyte, no longer this cluster's. */
  async release(name: string): Promise<void> {
    const entry = this.byName.get(name);
    if (!entry || entry.tenantId !== this.home?.id) return this.forget(name);
    const { label: _released, confirmedAt: _at, ...volume } = entry;
    await this.put(volume);
  }

  /** For Status: "ok", or that the API is down and since when this host answers from its cache. */
  describe(entry: CatalogEntry): Record<string, unknown> {
    if (!this.failure || performance.now() - entry.confirmedAt < this.options.ttlMs) return { api: "ok" };
    const confirmed = Number.isFinite(entry.confirmedAt)
      ? new Date(Date.now() - (performance.now() - entry.confirmedAt)).toISOString()
      : "before this plugin started";
    return {
      api: `unreachable since ${this.failure.since} (${this.failure.message}); answering from this host's cache`,
      confirmedAt: confirmed,
    };
  }

  /**
   * A refresh that began at `notBefore` or later (one begun earlier may not have seen
   * what the request asks about), unless one failed moments ago; waits at most `waitMs`.
   * Requests arriving together share one refresh.
   */
  private async fresh(notBefore: number, waitMs: number): Promise<void> {
    if (performance.now() < this.retryAt && this.everConfirmed) return;
    const refresh = (async () => {
      while (this.inflight && this.inflightStarted < notBefore) await this.inflight;
      if (this.refreshedAt >= notBefore) return;
      await this.refresh();
    })();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const patience = Number.isFinite(waitMs) ? new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs))) : refresh;
    await Promise.race([refresh, patience]);
    clearTimeout(timer);
  }

  /** One refresh at a time; callers share it. */
  private refresh(): Promise<void> {
    if (!this.inflight) this.inflightStarted = performance.now();
    this.inflight ??= this.fetchAll(this.inflightStarted)
      .catch((error: unknown) => this.noteFailure(error))
      .finally(() => {
        this.inflight = undefined;
      });
    return this.inflight;
  }

  private async fetchAll(started: number): Promise<void> {
    const api = this.options.api;
    const home = await this.homeTenant();
    const listed = await api.volumes(home.id);
    // The control volume never carries a label and is never cached: it is no news.
    const unlabelled = listed.some((volume) => volume.name !== CONTROL_VOLUME && !this.labels.has(volume.uuid));
    if (unlabelled || started - this.labelsAt >= LABEL_TTLS * this.options.ttlMs) {
      const labels = new Map<string, PluginLabel | null>();
      for (const { uuid, value } of await api.volumeLabels(PLUGIN_LABEL)) {
        const label = decodeLabel(value);
        if (label?.home === home.id && !label.released) labels.set(uuid, label);
      }
      for (const volume of listed) if (!labels.has(volume.uuid)) labels.set(volume.uuid, null);
      this.labels = labels;
      this.labelsAt = started;
    }
    const inHome = new Set(listed.map((volume) => volume.uuid));
    const elsewhere = [...this.labels].filter(([uuid, label]) => label && !inHome.has(uuid)).map(([uuid]) => uuid);
    // This cluster's volumes in other tenants (`-o tenant_id`): one call for all of them.
    const outside = elsewhere.length > 0 ? await api.volumes(undefined, elsewhere) : [];
    // Confirmed as of when the refresh began: conservative for the TTL.
    const entries: CatalogEntry[] = [];
    for (const volume of listed) entries.push({ ...volume, ...this.labelOf(volume.uuid), confirmedAt: started });
    for (const volume of outside) entries.push({ ...volume, ...this.labelOf(volume.uuid), confirmedAt: started });
    const seen = new Set(entries.map((entry) => entry.uuid));
    for (const uuid of elsewhere) if (!seen.has(uuid)) this.labels.delete(uuid);
    const kept = new Map<string, CatalogEntry | undefined>();
    for (const [name, at] of this.localChanges) if (at >= started) kept.set(name, this.byName.get(name));
    this.localChanges.clear();
    this.install(entries);
    for (const [name, entry] of kept) {
      this.localChanges.set(name, performance.now());
      if (entry) this.byName.set(name, entry);
      else this.byName.delete(name);
    }
    this.refreshedAt = started;
    this.everConfirmed = true;
    this.lastOutcome = { at: started };
    this.failure = undefined;
    this.failures = 0;
    await this.persist();
  }

  private labelOf(uuid: string): { label?: PluginLabel } {
    const label = this.labels.get(uuid);
    return label ? { label } : {};
  }

  /**
   * Docker names are flat, Quobyte names are per tenant: a name this cluster manages wins,
   * then a volume of the default tenant. Others' volumes in other tenants are not ours.
   */
  private install(entries: CatalogEntry[]): void {
    const byName = new Map<string, CatalogEntry>();
    const homeId = this.home?.id;
    const rank = (entry: CatalogEntry) => (entry.label ? 2 : 0) + (entry.tenantId === homeId ? 1 : 0);
    for (const entry of entries) {
      if (!entry.label && entry.tenantId !== homeId) continue;
      if (entry.name === CONTROL_VOLUME) continue;
      const other = byName.get(entry.name);
      if (other && rank(other) >= rank(entry)) {
        if (other.label && entry.label) this.options.log.warn(`two volumes of this plugin are called ${entry.name} (${other.uuid}, ${entry.uuid}); serving ${other.uuid}`);
        continue;
      }
      byName.set(entry.name, entry);
    }
    this.byName = byName;
  }

  private noteFailure(error: unknown): void {
    this.lastOutcome = { at: performance.now(), error };
    this.failures += 1;
    const pause = Math.min(RETRY_MIN_MS * 2 ** (this.failures - 1), RETRY_MAX_MS);
    this.retryAt = performance.now() + pause * (0.5 + Math.random() / 2);
    const message = messageOf(error);
    if (!this.failure) this.options.log.warn(`Quobyte API unreachable, answering from this host's cache: ${message}`);
    this.failure = { since: this.failure?.since ?? new Date().toISOString(), message };
  }

  /** Writes the cache file (only when the volumes changed since the last write). */
  async persist(clean = false): Promise<void> {
    if (!this.home) return;
    await this.options.file.write({
      tenant: { ref: this.options.tenantRef, ...this.home },
      clean,
      confirmedAt: new Date().toISOString(),
      volumes: [...this.byName.values()].map(({ confirmedAt: _at, ...volume }) => volume),
    });
  }

  async close(): Promise<void> {
    if (this.jitter) clearTimeout(this.jitter);
    this.endJitter();
    await this.inflight;
    await this.persist(true);
    await this.options.file.flush();
  }
}

/** Failures that say nothing about the volume: the API did not answer. */
export function isUnreachable(error: unknown): boolean {
  if (!(error instanceof QuobyteRpcError)) return false;
  return error.failure === "transport" || error.failure === "timeout" || (error.failure === "http" && (error.details.status ?? 0) >= 500);
}
