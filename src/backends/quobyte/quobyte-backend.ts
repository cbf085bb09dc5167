import { lstat, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { withDeadline } from "../../core/deadline.ts";
import { messageOf, PluginError } from "../../core/errors.ts";
import type { Backend, ProbeResult, StorageHealth, VolumeOptions, VolumeRecord, VolumeSummary } from "../../core/types.ts";
import type { Logger } from "../../logging.ts";
import type { QuobyteApi, Tenant } from "../../quobyte/api.ts";
import { QuobyteRpcError } from "../../quobyte/rpc-error.ts";
import { removeStaleTempFiles } from "../../system/atomic-file.ts";
import { crashPoint } from "../../system/crash-point.ts";
import type { MountMonitor } from "../../system/mount-health.ts";
import { classifyApiFailure } from "./api-health.ts";
import { CatalogFile } from "./catalog-file.ts";
import { CONTROL_VOLUME, controlVolumePath } from "./control-volume.ts";
import { type CatalogEntry, VolumeCatalog } from "./catalog.ts";
import { migrateLegacyRecords } from "./legacy-records.ts";
import { fixedUserEntry, parseQuobyteOptions, QUOBYTE_OPTION_NAMES } from "./options.ts";
import { apiError, provisionVolume, waitUntilVisible } from "./provision.ts";
import { encodeLabel, ownLabel, PLUGIN_LABEL, type PluginLabel } from "./volume-label.ts";

/** `<user>#<group>@<volume>` is the client's fixed-user syntax: a volume name must not mimic it. */
const FIXED_USER_SYNTAX = /[#@]/;
const NAME_MAX_BYTES = 255;
/** A health probe reuses the API's answer to a refresh this recent instead of calling again. */
const API_PROBE_REUSE_MS = 5000;
/** Mount asks the API about the volume unless a refresh of this very request just confirmed it. */
const MOUNT_RECHECK_MS = 1000;

export interface QuobyteBackendOptions {
  api: QuobyteApi;
  /** Where the whole Quobyte namespace is mounted on this host. */
  mountPath: string;
  /** This host's state directory: the volume cache lives here. */
  stateDir: string;
  /** Tenant name or UUID used when a volume gives none. */
  tenant: string;
  configurationName: string;
  /** Owner of new volumes' root directory when `user`/`group` are not given. */
  defaultUser: string;
  defaultGroup: string;
  monitor: MountMonitor;
  /** How long Create waits for a new volume to appear in the mount (ms). */
  createWaitMs: number;
  /** Deadline of one filesystem call on the mount (ms). */
  fsTimeoutMs: number;
  /** List also shows the tenant's volumes made by something else. */
  listAll: boolean;
  /** A volume the API confirmed this recently is served without asking it again (ms). */
  cacheTtlMs: number;
  /** Window over which the first refresh after a start is spread (ms); default cacheTtlMs. */
  startJitterMs?: number;
  /** How long a request waits for the API before the cache answers (ms). */
  apiWaitMs: number;
  /** Keep the control volume for mount claims (the service does; single-host unit tests need not). */
  claims: boolean;
  log: Logger;
}

/**
 * Volumes created and deleted through the Quobyte management API, reached through the
 * host's single mount of the Quobyte namespace (`<mount>/<volume>`). A volume's identity
 * and Docker options live on the Quobyte side, in a label set when it is created, so
 * every host sees every volume. This host keeps only a cache of the API's answers
 * (VolumeCatalog): it bounds the calls on the shared API and answers while the API is
 * down (an Err from Get would make the engine forget the volume).
 */
export class QuobyteBackend implements Backend {
  readonly kind = "quobyte";
  readonly scope = "global" as const;
  readonly optionNames = QUOBYTE_OPTION_NAMES;
  private readonly catalog: VolumeCatalog;
  private readonly tenants = new Map<string, Tenant>();
  private claims: string | undefined;

  constructor(private readonly options: QuobyteBackendOptions) {
    this.catalog = new VolumeCatalog({
      api: options.api,
      file: new CatalogFile(join(options.stateDir, "quobyte-catalog.json"), options.log),
      tenantRef: options.tenant,
      resolveTenant: (ref) => this.tenant(ref),
      ttlMs: options.cacheTtlMs,
      waitMs: options.apiWaitMs,
      jitterMs: options.startJitterMs ?? options.cacheTtlMs,
      log: options.log,
    });
  }

  async init(): Promise<void> {
    await mkdir(this.options.stateDir, { recursive: true, mode: 0o755 });
    // Cache writes cut off by a crash leave their temporary files behind.
    await removeStaleTempFiles(this.options.stateDir);
    await this.catalog.load();
    const apiReady = await this.resolveHomeTenant();
    if (apiReady) {
      const migrated = await migrateLegacyRecords({
        dir: join(this.options.stateDir, "quobyte-volumes"),
        api: this.options.api,
        home: await this.catalog.homeTenant(),
        log: this.options.log,
      });
      if (migrated > 0) this.catalog.invalidate();
    }
    // Claims need the mount: on a mount that is not there yet, no volume can be mounted either.
    if (this.options.claims && (await this.options.monitor.check()).state === "live") {
      const control = await controlVolumePath({
        api: this.options.api,
        mountPath: this.options.mountPath,
        home: () => this.catalog.homeTenant(),
        configurationName: this.options.configurationName,
        createWaitMs: this.options.createWaitMs,
        fsTimeoutMs: this.options.fsTimeoutMs,
        log: this.options.log,
      });
      if (control) this.claims = join(control, "claims");
    }
  }

  /**
   * The default tenant, from the cache file or the API. False when the API cannot tell
   * now: an unreachable API must not keep Docker from its volumes (resolved on the first
   * request then); an unknown tenant is a configuration error and fails the start.
   */
  private async resolveHomeTenant(): Promise<boolean> {
    if (this.catalog.knownHome()) return true;
    try {
      await this.catalog.homeTenant();
      // The cache file exists from the start: requests only ever change it.
      await this.catalog.persist();
      return true;
    } catch (error) {
      if (error instanceof PluginError && error.code === "INVALID_OPTION") {
        throw new PluginError("BACKEND_FAILED", `${error.message}; set QUOBYTE_TENANT_ID or --tenant-id to an existing tenant`);
      }
      this.options.log.warn(`cannot resolve tenant ${JSON.stringify(this.options.tenant)} yet: ${messageOf(error)}`);
      return false;
    }
  }

  /** Where the hosts publish their mount claims: inside the control volume (see control-volume.ts). */
  get claimsDir(): string | undefined {
    return this.claims;
  }

  /** Resolves a tenant name or UUID once; later calls use the cache. */
  private async tenant(ref: string, volume?: string): Promise<Tenant> {
    const cached = this.tenants.get(ref);
    if (cached) return cached;
    const found = await this.options.api.findTenant(ref).catch((error: unknown) => {
      throw apiError(error, volume);
    });
    if (!found) throw new PluginError("INVALID_OPTION", `tenant ${JSON.stringify(ref)} does not exist`, { volume });
    this.tenants.set(ref, found);
    return found;
  }

  private mountpointOf(name: string, label?: Pick<PluginLabel, "fixedUser" | "fixedGroup">): string {
    return join(this.options.mountPath, fixedUserEntry(name, label?.fixedUser, label?.fixedGroup));
  }

  checkName(name: string): void {
    if (name === CONTROL_VOLUME) {
      throw new PluginError("INVALID_NAME", `volume name ${JSON.stringify(name)} is reserved for this plugin's mount claims`, { volume: name });
    }
    if (FIXED_USER_SYNTAX.test(name)) {
      // `nobody#nogroup@data` would share its path with volume `data` mapped to nobody.
      throw new PluginError("INVALID_NAME", `volume name ${JSON.stringify(name)} must not contain "#" or "@" (the Quobyte client's fixed-user syntax)`, {
        volume: name,
      });
    }
  }

  /** The catalog's answer, with API failures as PluginErrors. */
  private async lookup(name: string): Promise<CatalogEntry | undefined> {
    return this.catalog.lookup(name).catch((error: unknown) => {
      throw apiError(error, name);
    });
  }

  async create(name: string, options: VolumeOptions, arrivedAt = performance.now()): Promise<void> {
    const spec = parseQuobyteOptions(options, name);
    if (Buffer.byteLength(fixedUserEntry(name, spec.fixedUser, spec.fixedGroup)) > NAME_MAX_BYTES) {
      throw new PluginError("INVALID_OPTION", `fixed_user/fixed_group make the mount path entry of ${JSON.stringify(name)} longer than ${NAME_MAX_BYTES} bytes`, {
        volume: name,
      });
    }
    // Even for a name that exists: a Create answered "done" on a dead or hung mount would
    // be followed by a Mount of a path that cannot work.
    await this.requireLiveMount(name, arrivedAt);
    // This cluster's volume of that name, in any tenant: nothing to do (Docker names are
    // flat; a second volume in another tenant would split the name). createVolume itself
    // settles the race of two Creates of a new name in one tenant.
    if ((await this.lookup(name))?.label) return;
    const home = await this.catalog.homeTenant().catch((error: unknown) => {
      throw apiError(error, name);
    });
    const tenant = spec.tenant === undefined ? home : await this.tenant(spec.tenant, name);
    const label: PluginLabel = {
      version: 1,
      home: home.id,
      options: { ...options },
      onRemove: spec.onRemove,
      createdAt: new Date().toISOString(),
      ...(spec.fixedUser === undefined ? {} : { fixedUser: spec.fixedUser }),
      ...(spec.fixedGroup === undefined ? {} : { fixedGroup: spec.fixedGroup }),
    };
    const { uuid, created } = await provisionVolume({
      api: this.options.api,
      log: this.options.log,
      name,
      tenantId: tenant.id,
      rootUserId: spec.user ?? this.options.defaultUser,
      rootGroupId: spec.group ?? this.options.defaultGroup,
      configurationName: spec.configurationName ?? this.options.configurationName,
      accessMode: spec.accessMode,
      sizeBytes: spec.sizeBytes,
      labels: [{ name: PLUGIN_LABEL, value: encodeLabel(label) }],
    });
    const owned = created ? label : await this.adopt(name, uuid, label);
    await waitUntilVisible(join(this.options.mountPath, name), name, this.options.createWaitMs, this.options.fsTimeoutMs);
    const [described] = await this.options.api.volumes(tenant.id, [uuid]).catch((error: unknown) => {
      throw apiError(error, name);
    });
    await this.catalog.put({ ...(described ?? { uuid, name, tenantId: tenant.id }), label: owned });
  }

  /**
   * A volume that existed already: another host's (its label wins: the first Create's
   * options hold everywhere), or one made by something else, which now gets our label
   * so that every host lists it.
   */
  private async adopt(name: string, uuid: string, label: PluginLabel): Promise<PluginLabel> {
    const api = this.options.api;
    try {
      const theirs = ownLabel(await api.volumeLabels(PLUGIN_LABEL, uuid), label.home);
      if (theirs && !theirs.released) return theirs;
      await api.setVolumeLabel(uuid, { name: PLUGIN_LABEL, value: encodeLabel(label) });
      this.options.log.info(`adopted existing Quobyte volume ${name} (${uuid})`);
      return label;
    } catch (error) {
      throw apiError(error, name);
    }
  }

  async remove(name: string): Promise<void> {
    const api = this.options.api;
    const entry = await this.lookup(name);
    try {
      const tenantId = entry?.tenantId ?? (await this.catalog.homeTenant()).id;
      // Ask the API, never the cache: the name may be gone or reused since.
      const uuid = await api.resolveVolume(name, tenantId);
      if (uuid === undefined) {
        await this.catalog.forget(name);
        return;
      }
      const label = entry?.uuid === uuid && entry.label ? entry.label : await this.labelOf(uuid);
      if (!label) {
        throw new PluginError(
          "NOT_MANAGED",
          `volume ${JSON.stringify(name)} (${uuid}) was not created by this plugin; delete it with the Quobyte tools, or adopt it first with docker volume create`,
          { volume: name },
        );
      }
      // Kept volumes stay in Quobyte, released: out of every host's List, and a repeated
      // Remove (the engine resends one whose answer was lost) is a success.
      if (label.released || label.onRemove === "keep") {
        if (!label.released) await api.setVolumeLabel(uuid, { name: PLUGIN_LABEL, value: encodeLabel({ ...label, released: true }) });
        await this.catalog.release(name);
        return;
      }
      // Nothing is recorded here before the call: the API is the truth, so a crash up to
      // this point leaves the volume whole (the engine got no answer and asks again).
      crashPoint("quobyte-remove:decided");
      if (label.onRemove === "erase") await api.eraseVolume(uuid);
      else await api.deleteVolume(uuid);
      // A crash here leaves this host's cache naming a deleted volume: after a crash the
      // cache file is not trusted, so the first request asks the API.
      crashPoint("quobyte-remove:deleted");
    } catch (error) {
      throw apiError(error, name);
    }
    await this.catalog.forget(name);
  }

  /** This cluster's label on a volume (released or not), asked of the API. */
  private async labelOf(uuid: string): Promise<PluginLabel | undefined> {
    const home = await this.catalog.homeTenant();
    return ownLabel(await this.options.api.volumeLabels(PLUGIN_LABEL, uuid), home.id);
  }

  async inspect(name: string): Promise<VolumeRecord | undefined> {
    const entry = await this.lookup(name);
    if (!entry) return undefined;
    const { label } = entry;
    const status: Record<string, unknown> = {
      backend: this.kind,
      uuid: entry.uuid,
      tenant: entry.tenantId,
      managed: label !== undefined,
      options: label?.options ?? {},
      mount: this.options.monitor.lastHealth?.state ?? "unknown",
      ...this.catalog.describe(entry),
    };
    if (label) status.onRemove = label.onRemove;
    if (entry.quotaBytes !== undefined) status.quotaBytes = entry.quotaBytes;
    if (entry.usedBytes !== undefined) status.usedBytes = entry.usedBytes;
    const createdAt = entry.createdMs === undefined ? label?.createdAt : new Date(entry.createdMs).toISOString();
    return { name, mountpoint: this.mountpointOf(name, label), status, ...(createdAt === undefined ? {} : { createdAt }) };
  }

  async list(): Promise<VolumeSummary[]> {
    return (await this.catalog.all())
      .filter((entry) => this.options.listAll || entry.label !== undefined)
      .map((entry) => ({ name: entry.name, mountpoint: this.mountpointOf(entry.name, entry.label) }));
  }

  async prepareMount(name: string, arrivedAt = performance.now()): Promise<string> {
    const entry = await this.lookup(name);
    if (!entry) throw new PluginError("VOLUME_NOT_FOUND", `volume ${JSON.stringify(name)} does not exist`, { volume: name });
    await this.requireLiveMount(name, arrivedAt);
    if (performance.now() - entry.confirmedAt > MOUNT_RECHECK_MS) {
      const verdict = await this.catalog.confirm(entry).catch((error: unknown) => {
        throw apiError(error, name);
      });
      if (verdict === "gone") {
        throw new PluginError("VOLUME_NOT_FOUND", `volume ${JSON.stringify(name)} no longer exists in Quobyte (removed on another host?)`, { volume: name });
      }
      // "unknown": the API is down. The directory check below still proves the volume is
      // there, and the cache knows it: refusing would stop every container on the host.
    }
    const plain = join(this.options.mountPath, name);
    try {
      const info = await withDeadline(lstat(plain), this.options.fsTimeoutMs, `checking ${plain}`, name);
      if (!info.isDirectory()) throw new Error("not a directory");
    } catch (error) {
      if (error instanceof PluginError) throw error;
      throw new PluginError("BACKEND_FAILED", `volume ${JSON.stringify(name)} is not reachable at ${plain}: ${messageOf(error)}`, {
        volume: name,
        cause: error,
      });
    }
    return this.mountpointOf(name, entry.label);
  }

  health(): Promise<StorageHealth> {
    return this.options.monitor.check();
  }

  /**
   * The API's health from a refresh of the volume cache (one getVolumeList: reachability,
   * credentials and the tenant in one call, and the cache gets fresher for it). After a
   * clean restart it waits for the jittered first refresh instead of calling at once.
   */
  async checkApi(): Promise<ProbeResult> {
    const failure = await this.catalog.probe(API_PROBE_REUSE_MS);
    if (failure === undefined) {
      const home = this.catalog.knownHome();
      return { ok: true, state: "ok", detail: `reachable and authenticated; tenant ${home?.name} is ${home?.id}` };
    }
    if (failure instanceof PluginError && failure.code === "INVALID_OPTION") {
      return { ok: false, state: "failing", detail: `${failure.message}; set QUOBYTE_TENANT_ID or --tenant-id to an existing tenant` };
    }
    // The API client's own error says whether it was the credentials or the connection.
    const cause = failure instanceof PluginError && failure.cause instanceof QuobyteRpcError ? failure.cause : failure;
    return classifyApiFailure(cause);
  }

  /** Never hand out a path on an unmounted mount point: data would land on the root disk. */
  private async requireLiveMount(volume: string, arrivedAt: number): Promise<void> {
    const health = await this.options.monitor.check(arrivedAt);
    if (health.state !== "live") throw new PluginError("BACKEND_FAILED", health.detail, { volume });
  }

  async close(): Promise<void> {
    await this.catalog.close();
  }
}
