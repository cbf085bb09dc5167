import type { RpcClient } from "./rpc-client.ts";
import { QuobyteRpcError } from "./rpc-error.ts";

/** Any UUID shape: tenants created by other tools are not always v4. */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: string): boolean {
  return UUID.test(value);
}

export interface Tenant {
  id: string;
  name: string;
}

export interface NewVolume {
  name: string;
  tenantId: string;
  rootUserId: string;
  rootGroupId: string;
  configurationName: string;
  /** Octal digits as the API expects them, written as a decimal number (0750 -> 750). */
  accessMode?: number;
  /** Set on the volume as it is created (Quobyte 3.x), so it is never seen without them. */
  labels?: VolumeLabelValue[];
}

export interface VolumeLabelValue {
  name: string;
  value: string;
}

/** One volume as getVolumeList describes it. */
export interface ApiVolume {
  uuid: string;
  name: string;
  tenantId: string;
  /** The API's creation time (ms since the epoch), when it reports one. */
  createdMs?: number;
  quotaBytes?: number;
  usedBytes?: number;
  fileCount?: number;
}

interface ApiVolumeEntry {
  volume_uuid: string;
  name: string;
  tenant_domain?: string;
  quota_disk_space_bytes?: number;
  used_logical_space_bytes?: number;
  file_count?: number;
  scheduled_for_deletion?: boolean;
  creation_timestamp_ms?: number;
}

function isType(error: unknown, type: string): boolean {
  return error instanceof QuobyteRpcError && error.errorType === type;
}

export const isNotFound = (error: unknown): boolean => isType(error, "ENTITY_NOT_FOUND");
export const isExists = (error: unknown): boolean => isType(error, "ENTITY_EXISTS_ALREADY");

/** The management API methods the plugin uses, with the API's field names kept here. */
export class QuobyteApi {
  constructor(private readonly rpc: RpcClient) {}

  /** A tenant given by UUID or name, resolved to both; undefined when it does not exist. */
  async findTenant(ref: string): Promise<Tenant | undefined> {
    if (isUuid(ref)) {
      try {
        const { tenant = [] } = await this.rpc.call<{ tenant?: { tenant_id: string; name: string }[] }>(
          "getTenant",
          { tenant_id: [ref] },
          { idempotent: true },
        );
        const found = tenant.find((t) => t.tenant_id.toLowerCase() === ref.toLowerCase());
        if (found) return { id: found.tenant_id, name: found.name };
      } catch (error) {
        if (!isNotFound(error)) throw error;
      }
      // Fall through: a tenant may be named like a UUID.
    }
    try {
      const { tenant_id } = await this.rpc.call<{ tenant_id?: string }>("resolveTenantName", { tenant_name: ref }, { idempotent: true });
      return tenant_id ? { id: tenant_id, name: ref } : undefined;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /** Creates a volume and returns its UUID. */
  async createVolume(volume: NewVolume): Promise<string> {
    const params: Record<string, unknown> = {
      name: volume.name,
      tenant_id: volume.tenantId,
      root_user_id: volume.rootUserId,
      root_group_id: volume.rootGroupId,
      configuration_name: volume.configurationName,
    };
    if (volume.accessMode !== undefined) params.access_mode = volume.accessMode;
    if (volume.labels && volume.labels.length > 0) params.label = volume.labels.map(({ name, value }) => ({ name, value }));
    const { volume_uuid } = await this.rpc.call<{ volume_uuid?: string }>("createVolume", params);
    if (!volume_uuid) throw new QuobyteRpcError("http", "createVolume", "the answer carries no volume_uuid");
    return volume_uuid;
  }

  /** The UUID of a volume in a tenant, or undefined when there is none. */
  async resolveVolume(name: string, tenantId: string): Promise<string | undefined> {
    try {
      const { volume_uuid } = await this.rpc.call<{ volume_uuid?: string }>(
        "resolveVolumeName",
        { volume_name: name, tenant_domain: tenantId },
        { idempotent: true },
      );
      return volume_uuid || undefined;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /** Deletes at once; a volume that is already gone is success. */
  async deleteVolume(uuid: string): Promise<void> {
    await this.ignoreNotFound(this.rpc.call("deleteVolume", { volume_uuid: uuid }, { idempotent: true }));
  }

  /** Schedules the erasure (Quobyte 3.x); a volume that is already gone is success. */
  async eraseVolume(uuid: string): Promise<void> {
    await this.ignoreNotFound(this.rpc.call("eraseVolume", { volume_uuid: uuid, force: false }, { idempotent: true }));
  }

  /** Sets the volume's logical disk space quota in bytes. */
  async setVolumeQuota(uuid: string, bytes: number): Promise<void> {
    await this.rpc.call(
      "setQuota",
      {
        quotas: [
          {
            consumer: [{ type: "VOLUME", identifier: uuid }],
            limits: [{ type: "LOGICAL_DISK_SPACE", value: bytes }],
          },
        ],
      },
      { idempotent: true },
    );
  }

  /**
   * The tenant's volumes (all of them, or the given UUIDs; without a tenant, those UUIDs in
   * any tenant), without those scheduled for deletion: an erased volume is gone for Docker
   * even while Quobyte still frees it.
   */
  async volumes(tenantId: string | undefined, uuids?: string[]): Promise<ApiVolume[]> {
    const params: Record<string, unknown> = {};
    if (tenantId !== undefined) params.tenant_domain = tenantId;
    if (uuids) params.volume_uuid = uuids;
    const { volume = [] } = await this.rpc.call<{ volume?: ApiVolumeEntry[] }>("getVolumeList", params, { idempotent: true });
    return volume
      .filter((v) => !v.scheduled_for_deletion)
      .map((v) => ({
        uuid: v.volume_uuid,
        name: v.name,
        tenantId: v.tenant_domain ?? tenantId ?? "",
        createdMs: v.creation_timestamp_ms || undefined,
        quotaBytes: v.quota_disk_space_bytes,
        usedBytes: v.used_logical_space_bytes,
        fileCount: v.file_count,
      }));
  }

  /** Every volume label called `name` (all volumes, or one), as UUID and value. */
  async volumeLabels(name: string, uuid?: string): Promise<{ uuid: string; value: string }[]> {
    const params: Record<string, unknown> = { namespace: "SYSTEM", filter_entity_type: "VOLUME", label_name: name };
    if (uuid !== undefined) params.filter_entity_id = uuid;
    const { label = [] } = await this.rpc.call<{ label?: { entity_type?: string; entity_id?: string; name?: string; value?: string }[] }>(
      "getLabels",
      params,
      { idempotent: true },
    );
    return label
      .filter((l) => (l.entity_type ?? "VOLUME") === "VOLUME" && l.name === name && typeof l.entity_id === "string")
      .map((l) => ({ uuid: l.entity_id as string, value: l.value ?? "" }));
  }

  /** Sets (adds or replaces) one label of a volume. */
  async setVolumeLabel(uuid: string, label: VolumeLabelValue): Promise<void> {
    await this.rpc.call("setLabels", { label: [volumeLabel(uuid, label)] }, { idempotent: true });
  }

  private async ignoreNotFound(call: Promise<unknown>): Promise<void> {
    try {
      await call;
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }
}

function volumeLabel(uuid: string, label: VolumeLabelValue): Record<string, unknown> {
  return { namespace: "SYSTEM", entity_type: "VOLUME", entity_id: uuid, name: label.name, value: label.value };
}
