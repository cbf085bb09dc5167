import { lstat } from "node:fs/promises";
import { join } from "node:path";
import { withDeadline } from "../../core/deadline.ts";
import { messageOf, PluginError } from "../../core/errors.ts";
import type { Backend, ProbeResult, StorageHealth, VolumeOptions, VolumeRecord, VolumeSummary } from "../../core/types.ts";
import type { Logger } from "../../logging.ts";
import type { QuobyteApi, Tenant } from "../../quobyte/api.ts";
import type { MountMonitor } from "../../system/mount-health.ts";
import { crashPoint } from "../../system/crash-point.ts";
import { MetadataStore } from "../metadata-store.ts";
import { fixedUserEntry, parseQuobyteOptions, QUOBYTE_OPTION_NAMES, type RemovePolicy } from "./options.ts";
import { classifyApiFailure } from "./api-health.ts";
import { apiError, provisionVolume, waitUntilVisible } from "./provision.ts";
import { UsageCache } from "./usage-cache.ts";

/** What this host remembers of a volume: Remove, Mount and Get receive only the name. */
interface QuobyteVolumeMeta {
  version: 1;
  uuid: string;
  tenantId: string;
  createdAt: string;
  options: Record<string, string>;
  onRemove: RemovePolicy;
  fixedUser?: string;
  fixedGroup?: string;
  /**
   * Written before the API is asked to delete the volume: the Remove was decided. From
   * then on Get and List do not show the volume (its API volume may be gone already), and
   * a Remove cut off by a crash is finished at start, or by the next Remove or Create.
   */
  state?: "removing";
}

/** `<user>#<group>@<volume>` is the client's fixed-user syntax: a volume name must not mimic it. */
const FIXED_USER_SYNTAX = /[#@]/;
const NAME_MAX_BYTES = 255;

export interface QuobyteBackendOptions {
  api: QuobyteApi;
  /** Where the whole Quobyte namespace is mounted on this host. */
  mountPath: string;
  /** Holds per-volume metadata (this host's state directory). */
  metadataDir: string;
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
  /** List also shows every volume of the tenant, not only the ones created here. */
  listAll: boolean;
  log: Logger;
}

/**
 * Volumes created and deleted through the Quobyte management API, reached through the
 * host's single mount of the Quobyte namespace (`<mount>/<volume>`). Get and List answer
 * from local metadata, so they keep working while the API is down: an Err from Get would
 * make the engine forget the volume.
 */
export class QuobyteBackend implements Backend {
  readonly kind = "quobyte";
  readonly scope = "global" as const;
  readonly optionNames = QUOBYTE_OPTION_NAMES;
  private readonly meta: MetadataStore<QuobyteVolumeMeta>;
  private readonly tenants = new Map<string, Tenant>();
  private readonly usage: UsageCache;

  constructor(private readonly options: QuobyteBackendOptions) {
    // This host's own state directory: nobody else writes it.
    this.meta = new MetadataStore(options.metadataDir, { mode: 0o600, shared: false });
    this.usage = new UsageCache(options.api, () => [...this.tenants.values()].map((tenant) => tenant.id), options.log);
  }

  async init(): Promise<void> {
    await this.meta.init();
    await this.rollForwardInterruptedRemoves();
    try {
      await this.tenant(this.options.tenant);
    } catch (error) {
      // An unknown tenant is a configuration error: fail at start. An API that cannot be
      // reached must not keep Docker from its volumes: resolve on the first Create.
      if (error instanceof PluginError && error.code === "INVALID_OPTION") {
        throw new PluginError("BACKEND_FAILED", `${error.message}; set QUOBYTE_TENANT_ID or --tenant-id to an existing tenant`);
      }
      this.options.log.warn(`cannot resolve tenant ${JSON.stringify(this.options.tenant)} yet: ${messageOf(error)}`);
    }
  }

  /**
   * Finishes Removes that a crash cut short. The API may be away at start: then the
   * first failure ends the attempt (one timeout, not one per volume), and the records
   * stay hidden until a later Remove, Create or start finishes them.
   */
  private async rollForwardInterruptedRemoves(): Promise<void> {
    for (const [name, meta] of this.meta.entries()) {
      if (meta.state !== "removing") continue;
      try {
        await this.finishRemove(name, meta);
      } catch (error) {
        this.options.log.warn(`cannot finish the interrupted removal of ${name} yet: ${messageOf(error)}`);
        return;
      }
    }
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

  private mountpointOf(name: string, meta?: Pick<QuobyteVolumeMeta, "fixedUser" | "fixedGroup">): string {
    return join(this.options.mountPath, fixedUserEntry(name, meta?.fixedUser, meta?.fixedGroup));
  }

  checkName(name: string): void {
    if (FIXED_USER_SYNTAX.test(name)) {
      // `nobody#nogroup@data` would share its path with volume `data` mapped to nobody.
      throw new PluginError("INVALID_NAME", `volume name ${JSON.stringify(name)} must not contain "#" or "@" (the Quobyte client's fixed-user syntax)`, {
        volume: name,
      });
    }
  }

  async create(name: string, options: VolumeOptions, arrivedAt = performance.now()): Promise<void> {
    const spec = parseQuobyteOptions(options, name);
    if (Buffer.byteLength(fixedUserEntry(name, spec.fixedUser, spec.fixedGroup)) > NAME_MAX_BYTES) {
      throw new PluginError("INVALID_OPTION", `fixed_user/fixed_group make the mount path entry of ${JSON.stringify(name)} longer than ${NAME_MAX_BYTES} bytes`, {
        volume: name,
      });
    }
    const existing = await this.meta.read(name);
    if (existing?.state === "removing") await this.finishRemove(name, existing);
    else if (existing) return;
    await this.requireLiveMount(name, arrivedAt);
    const tenant = await this.tenant(spec.tenant ?? this.options.tenant, name);
    const uuid = await provisionVolume({
      api: this.options.api,
      log: this.options.log,
      name,
      tenantId: tenant.id,
      rootUserId: spec.user ?? this.options.defaultUser,
      rootGroupId: spec.group ?? this.options.defaultGroup,
      configurationName: spec.configurationName ?? this.options.configurationName,
      accessMode: spec.accessMode,
      sizeBytes: spec.sizeBytes,
    });
    await waitUntilVisible(join(this.options.mountPath, name), name, this.options.createWaitMs, this.options.fsTimeoutMs);
    await this.meta.write(name, {
      version: 1,
      uuid,
      tenantId: tenant.id,
      createdAt: new Date().toISOString(),
      options: { ...options },
      onRemove: spec.onRemove,
      ...(spec.fixedUser === undefined ? {} : { fixedUser: spec.fixedUser }),
      ...(spec.fixedGroup === undefined ? {} : { fixedGroup: spec.fixedGroup }),
    });
  }

  async remove(name: string): Promise<void> {
    const meta = await this.meta.read(name);
    if (!meta) return;
    if (meta.onRemove !== "keep" && meta.state !== "removing") await this.meta.write(name, { ...meta, state: "removing" });
    crashPoint("quobyte-remove:marked");
    await this.finishRemove(name, meta, meta.state === "removing" ? undefined : meta);
  }

  /**
   * Deletes (or erases) the API volume if it is still ours, then forgets it. When the API
   * cannot even be asked, nothing was deleted: `restoreOnFailure` is put back, so the
   * volume stays whole and listed. A failed delete call may have been carried out and
   * keeps the "removing" record.
   */
  private async finishRemove(name: string, meta: QuobyteVolumeMeta, restoreOnFailure?: QuobyteVolumeMeta): Promise<void> {
    if (meta.onRemove !== "keep") {
      const api = this.options.api;
      // Resolve in the volume's own tenant: the name may have been reused since.
      const current = await api.resolveVolume(name, meta.tenantId).catch(async (error: unknown) => {
        if (restoreOnFailure) await this.meta.write(name, restoreOnFailure).catch(() => {});
        throw apiError(error, name);
      });
      if (current !== undefined && current !== meta.uuid) {
        this.options.log.warn(`volume ${name} now names another Quobyte volume (${current}, ours was ${meta.uuid}); not deleting it`);
      } else if (current !== undefined) {
        const call = meta.onRemove === "erase" ? api.eraseVolume(meta.uuid) : api.deleteVolume(meta.uuid);
        await call.catch((error: unknown) => {
          throw apiError(error, name);
        });
        crashPoint("quobyte-remove:deleted");
      }
    }
    await this.meta.delete(name);
    this.usage.forget(meta.uuid);
  }

  async inspect(name: string): Promise<VolumeRecord | undefined> {
    const meta = await this.meta.read(name);
    if (!meta || meta.state === "removing") return undefined;
    await this.usage.fresh();
    const usage = this.usage.get(meta.uuid);
    const status: Record<string, unknown> = {
      backend: this.kind,
      uuid: meta.uuid,
      tenant: meta.tenantId,
      options: meta.options,
      onRemove: meta.onRemove,
      mount: this.options.monitor.lastHealth?.state ?? "unknown",
    };
    if (usage?.quotaBytes !== undefined) status.quotaBytes = usage.quotaBytes;
    if (usage?.usedBytes !== undefined) status.usedBytes = usage.usedBytes;
    return { name, mountpoint: this.mountpointOf(name, meta), createdAt: meta.createdAt, status };
  }

  async list(): Promise<VolumeSummary[]> {
    const entries = this.meta.entries();
    const names = new Set(entries.filter(([, meta]) => meta.state !== "removing").map(([name]) => name));
    if (this.options.listAll) {
      await this.usage.fresh();
      const removing = new Set(entries.filter(([, meta]) => meta.state === "removing").map(([name]) => name));
      for (const volume of this.usage.volumes()) if (!removing.has(volume.name)) names.add(volume.name);
    }
    const out: VolumeSummary[] = [];
    for (const name of names) out.push({ name, mountpoint: join(this.options.mountPath, name) });
    return out;
  }

  async prepareMount(name: string, arrivedAt = performance.now()): Promise<string> {
    // The driver's inspect just read the record under the same lock: it is not "removing".
    const meta = await this.meta.read(name);
    await this.requireLiveMount(name, arrivedAt);
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
    return this.mountpointOf(name, meta);
  }

  health(): Promise<StorageHealth> {
    return this.options.monitor.check();
  }

  /** Resolves the configured tenant afresh: reachability, credentials and the tenant in one call. */
  async checkApi(): Promise<ProbeResult> {
    try {
      const found = await this.options.api.findTenant(this.options.tenant);
      if (!found) {
        return { ok: false, state: "failing", detail: `tenant ${JSON.stringify(this.options.tenant)} does not exist; set QUOBYTE_TENANT_ID or --tenant-id to an existing tenant` };
      }
      this.tenants.set(this.options.tenant, found);
      return { ok: true, state: "ok", detail: `reachable and authenticated; tenant ${found.name} is ${found.id}` };
    } catch (error) {
      return classifyApiFailure(error);
    }
  }

  /** Never hand out a path on an unmounted mount point: data would land on the root disk. */
  private async requireLiveMount(volume: string, arrivedAt: number): Promise<void> {
    const health = await this.options.monitor.check(arrivedAt);
    if (health.state !== "live") throw new PluginError("BACKEND_FAILED", health.detail, { volume });
  }

  async close(): Promise<void> {
    await this.usage.close();
  }
}
