/**
 * State and JSON-RPC methods of the fake Quobyte API (reference §5.3, §5.4).
 * Every method runs synchronously, so each request's state change is atomic.
 */
import {
  CONSUMER_TYPES,
  CONSUMER_TYPE_NUMBERS,
  RESOURCE_TYPES,
  RESOURCE_TYPE_NUMBERS,
  RpcError,
  enumValue,
  errorCodeFor,
  formatAppError,
  invalidRequest,
  isPlainObject,
  optBool,
  optInteger,
  optList,
  optString,
  optStringList,
  type ErrorType,
  type Params,
} from "./errors.ts";
import { deleteLabels, getLabels, type LabelHost, setLabels } from "./labels.ts";
import { MountTree } from "./mount-tree.ts";
import type { FakeLabel, FakeQuobyteOptions, FakeQuota, FakeRole, FakeTenant, FakeUser, FakeVolume } from "./types.ts";

export const DEFAULT_USER: FakeUser = { name: "admin", password: "s3cret-Pa55", role: "SUPER_USER" };

export interface Principal {
  name: string;
  role: FakeRole;
  tenantIds: Set<string>;
  primaryGroup: string;
  groups: string[];
}

type StoredVolume = Omit<FakeVolume, "quotaBytes">;

export class FakeState {
  readonly tenants: FakeTenant[];
  private readonly seedTenants: FakeTenant[];
  readonly volumes = new Map<string, StoredVolume>();
  quotas: FakeQuota[] = [];
  private readonly eraseTimers = new Map<string, ReturnType<typeof setTimeout>>();
  private readonly users: FakeUser[];
  private readonly configurations: Set<string>;
  private readonly posix: boolean;
  private readonly byName: boolean;
  readonly mountTree: MountTree | undefined;

  constructor(private readonly opts: FakeQuobyteOptions) {
    this.seedTenants = (opts.tenants ?? [{ id: crypto.randomUUID(), name: "My Tenant" }]).map((t) => ({ ...t }));
    this.tenants = this.seedTenants.map((t) => ({ ...t }));
    this.users = opts.users ?? [DEFAULT_USER];
    this.configurations = new Set(opts.configurations ?? ["BASE"]);
    this.posix = opts.posixSuffix ?? true;
    this.byName = opts.tenantRefs === "uuid-or-name";
    this.mountTree =
      opts.mountTree === undefined
        ? undefined
        : new MountTree(opts.mountTree, opts.mountTreeLayout ?? "name", opts.mountDelayMs ?? 0);
  }

  // ---- authentication -------------------------------------------------------------

  /** The principal for user/password, or undefined. */
  login(name: string, password: string): Principal | undefined {
    const u = this.users.find((x) => x.name === name && x.password === password);
    return u === undefined ? undefined : this.principal(u);
  }

  principal(u: FakeUser): Principal {
    const ids = new Set<string>();
    for (const ref of u.tenants ?? []) {
      const t = this.tenants.find((x) => x.id === ref || x.name === ref);
      ids.add(t?.id ?? ref);
    }
    return {
      name: u.name,
      role: u.role ?? "SUPER_USER",
      tenantIds: ids,
      primaryGroup: u.primaryGroup ?? "users",
      groups: u.groups ?? [],
    };
  }

  // ---- control interface ----------------------------------------------------------

  reset(): void {
    for (const t of this.eraseTimers.values()) clearTimeout(t);
    this.eraseTimers.clear();
    this.mountTree?.cancelAll();
    for (const v of [...this.volumes.values()]) this.removeVolume(v);
    this.quotas = [];
    this.tenants.length = 0;
    this.tenants.push(...this.seedTenants.map((t) => ({ ...t })));
  }

  stopTimers(): void {
    for (const t of this.eraseTimers.values()) clearTimeout(t);
    this.eraseTimers.clear();
    this.mountTree?.cancelAll();
  }

  snapshot(v: StoredVolume): FakeVolume {
    const quotaBytes = this.volumeQuota(v.uuid);
    const copy: FakeVolume = { ...v, labels: v.labels?.map((l) => ({ ...l })) };
    if (copy.labels === undefined || copy.labels.length === 0) delete copy.labels;
    if (quotaBytes !== undefined) copy.quotaBytes = quotaBytes;
    return copy;
  }

  seedVolume(v: Partial<FakeVolume> & { name: string; tenantId: string }): FakeVolume {
    if (!this.tenants.some((t) => t.id === v.tenantId)) throw new Error(`fake-quobyte: unknown tenant ${v.tenantId}`);
    const dup = this.findByName(v.tenantId, v.name);
    if (dup !== undefined) throw new Error(`fake-quobyte: volume ${v.name} exists already (${dup.uuid})`);
    const { quotaBytes, ...rest } = v;
    const stored: StoredVolume = {
      uuid: crypto.randomUUID(),
      rootUserId: "root",
      rootGroupId: "root",
      accessMode: undefined,
      configurationName: undefined,
      createdMs: Date.now(),
      scheduledForDeletion: false,
      usedBytes: 0,
      ...rest,
    };
    this.volumes.set(stored.uuid, stored);
    if (quotaBytes !== undefined) this.putQuota({ type: "VOLUME", identifier: stored.uuid }, [{ type: "LOGICAL_DISK_SPACE", value: quotaBytes }]);
    this.mountTree?.schedule(stored);
    return this.snapshot(stored);
  }

  seedTenant(t: { name: string; id?: string }): FakeTenant {
    if (this.tenants.some((x) => x.name === t.name)) throw new Error(`fake-quobyte: tenant ${t.name} exists already`);
    const tenant = { id: t.id ?? crypto.randomUUID(), name: t.name };
    this.tenants.push(tenant);
    return { ...tenant };
  }

  // ---- JSON-RPC dispatch ----------------------------------------------------------

  /** Runs one method; returns its result object or throws RpcError. Unknown method ⇒ -32601. */
  call(method: string, params: Params, who: Principal): Record<string, unknown> {
    switch (method) {
      case "createVolume": return this.createVolume(params, who);
      case "resolveVolumeName": return this.resolveVolumeName(params, who);
      case "deleteVolume": return this.deleteVolume(params, who);
      case "eraseVolume": return this.eraseVolume(params, who);
      case "setQuota": return this.setQuota(params, who);
      case "getQuota": return this.getQuota(params, who);
      case "resolveTenantName": return this.resolveTenantName(params, who);
      case "getTenant": return this.getTenant(params, who);
      case "setTenant": return this.setTenant(params, who);
      case "deleteTenant": return this.deleteTenant(params, who);
      case "getVolumeList": return this.getVolumeList(params, who);
      case "getClientList": return this.list({}, "client", []);
      case "getLabels": return this.list({}, "label", getLabels(params, this.labelHost(who), this.volumes.keys()));
      case "setLabels": setLabels(params, this.labelHost(who)); return {};
      case "deleteLabels": deleteLabels(params, this.labelHost(who)); return {};
      case "whoAmI": return this.whoAmI(who);
      case "getInformation": return {};
      default: throw new RpcError(-32601, "");
    }
  }

  /** The label methods' view of the state for one caller. */
  private labelHost(who: Principal): LabelHost {
    return {
      volumeLabels: (uuid) => {
        const v = this.volumes.get(uuid) ?? this.volumes.get(uuid.toLowerCase());
        if (v === undefined) return undefined;
        v.labels ??= [];
        return { tenantId: v.tenantId, labels: v.labels };
      },
      canReadTenant: (tenantId) => this.canRead(who, tenantId),
      requireWriteTenant: (tenantId) => this.requireWrite(who, this.tenants.find((t) => t.id === tenantId) ?? { id: tenantId, name: tenantId }),
      notFound: (text) => this.fail("ENTITY_NOT_FOUND", text),
      invalidArgument: (text) => this.fail("INVALID_ARGUMENT", text),
    };
  }

  private fail(type: ErrorType, text: string): RpcError {
    const message = formatAppError(type, text, this.posix);
    return new RpcError(errorCodeFor(type), message);
  }

  private list(result: Record<string, unknown>, key: string, items: unknown[]): Record<string, unknown> {
    if (items.length > 0 || !this.opts.omitEmptyLists) result[key] = items;
    return result;
  }

  // ---- tenants and permissions ----------------------------------------------------

  /** Resolve a tenant reference per the tenantRefs mode. */
  private tenantByRef(ref: string): FakeTenant {
    const t =
      this.tenants.find((x) => x.id.toLowerCase() === ref.toLowerCase()) ??
      (this.byName ? this.tenants.find((x) => x.name === ref) : undefined);
    if (t === undefined) throw this.fail("ENTITY_NOT_FOUND", `Tenant '${ref}' does not exist.`);
    return t;
  }

  private canRead(who: Principal, tenantId: string): boolean {
    return who.role === "SUPER_USER" || who.tenantIds.has(tenantId);
  }

  private canWrite(who: Principal, tenantId: string): boolean {
    return who.role === "SUPER_USER" || (who.role === "TENANT_ADMIN" && who.tenantIds.has(tenantId));
  }

  private requireRead(who: Principal, tenant: FakeTenant): void {
    if (!this.canRead(who, tenant.id))
      throw this.fail("PERMISSION_DENIED", `User '${who.name}' may not access tenant '${tenant.id}'`);
  }

  private requireWrite(who: Principal, tenant: FakeTenant): void {
    if (!this.canWrite(who, tenant.id))
      throw this.fail("PERMISSION_DENIED", `User '${who.name}' may not modify tenant '${tenant.id}'`);
  }

  private requireSuperUser(who: Principal): void {
    if (who.role !== "SUPER_USER") throw this.fail("PERMISSION_DENIED", `User '${who.name}' is not a super user`);
  }

  private tenantOf(v: StoredVolume): FakeTenant {
    return this.tenants.find((t) => t.id === v.tenantId) ?? { id: v.tenantId, name: v.tenantId };
  }

  // ---- volumes --------------------------------------------------------------------

  private findByName(tenantId: string, name: string): StoredVolume | undefined {
    for (const v of this.volumes.values()) if (v.tenantId === tenantId && v.name === name) return v;
    return undefined;
  }

  private volumeByUuid(p: Params): StoredVolume {
    const uuid = optString(p, "volume_uuid");
    if (uuid === undefined) throw this.fail("INVALID_ARGUMENT", "volume_uuid must be set");
    const v = this.volumes.get(uuid) ?? this.volumes.get(uuid.toLowerCase());
    if (v === undefined) throw this.fail("ENTITY_NOT_FOUND", `Volume '${uuid}' not found`);
    return v;
  }

  private removeVolume(v: StoredVolume): void {
    this.volumes.delete(v.uuid);
    const timer = this.eraseTimers.get(v.uuid);
    if (timer !== undefined) clearTimeout(timer);
    this.eraseTimers.delete(v.uuid);
    this.quotas = this.quotas.filter((q) => !(q.consumer[0]?.type === "VOLUME" && q.consumer[0].identifier === v.uuid));
    const nameStillUsed = [...this.volumes.values()].some((x) => x.name === v.name);
    this.mountTree?.remove(v, nameStillUsed);
  }

  private createVolume(p: Params, who: Principal): Record<string, unknown> {
    const name = optString(p, "name");
    if (name === undefined) throw this.fail("INVALID_ARGUMENT", "Volume name must not be empty");
    if (name.includes("/") || name === "." || name === ".." || name.includes("\0"))
      throw this.fail("INVALID_ARGUMENT", `Volume name '${name}' is not valid`);
    const ref = optString(p, "tenant_id") ?? optString(p, "tenant_domain") ?? this.opts.defaultTenantId;
    if (ref === undefined) throw this.fail("INVALID_ARGUMENT", "tenant_id must be set");
    const tenant = this.tenantByRef(ref);
    this.requireWrite(who, tenant);
    const configurationName = optString(p, "configuration_name");
    if (configurationName !== undefined && !this.opts.ignoreConfigurationName && !this.configurations.has(configurationName))
      throw this.fail("ENTITY_NOT_FOUND", `Configuration '${configurationName}' does not exist.`);
    const accessMode = parseAccessMode(p["access_mode"]);
    const rootUserId = optString(p, "root_user_id") ?? "root";
    const rootGroupId = optString(p, "root_group_id") ?? "root";
    const labels = optList(p, "label").map((l): FakeLabel => {
      if (!isPlainObject(l) || typeof l["name"] !== "string") throw invalidRequest();
      const value = l["value"] ?? "";
      if (typeof value !== "string") throw invalidRequest();
      return { name: l["name"], value };
    });
    const dup = this.findByName(tenant.id, name);
    if (dup !== undefined) throw this.fail("ENTITY_EXISTS_ALREADY", `Volume name ${name} is already used by volume ${dup.uuid}`);
    const v: StoredVolume = {
      uuid: crypto.randomUUID(),
      name,
      tenantId: tenant.id,
      rootUserId,
      rootGroupId,
      accessMode,
      configurationName,
      createdMs: Date.now(),
      scheduledForDeletion: false,
      usedBytes: 0,
    };
    if (labels.length > 0) v.labels = labels;
    this.volumes.set(v.uuid, v);
    this.mountTree?.schedule(v);
    return { volume_uuid: v.uuid };
  }

  private resolveVolumeName(p: Params, who: Principal): Record<string, unknown> {
    const name = optString(p, "volume_name");
    if (name === undefined) throw this.fail("INVALID_ARGUMENT", "volume_name must be set");
    const ref = optString(p, "tenant_domain");
    let matches: StoredVolume[];
    if (ref !== undefined) {
      const tenant = this.tenantByRef(ref);
      this.requireRead(who, tenant);
      const v = this.findByName(tenant.id, name);
      matches = v === undefined ? [] : [v];
    } else {
      matches = [...this.volumes.values()].filter((v) => v.name === name && this.canRead(who, v.tenantId));
    }
    const [first] = matches;
    if (first === undefined) throw this.fail("ENTITY_NOT_FOUND", `Volume '${name}' not found`);
    if (matches.length > 1)
      throw this.fail("INVALID_ARGUMENT", `Volume name '${name}' exists in several tenants, specify tenant_domain`);
    return { volume_uuid: first.uuid };
  }

  private deleteVolume(p: Params, who: Principal): Record<string, unknown> {
    const v = this.volumeByUuid(p);
    this.requireWrite(who, this.tenantOf(v));
    this.removeVolume(v);
    return {};
  }

  private eraseVolume(p: Params, who: Principal): Record<string, unknown> {
    const v = this.volumeByUuid(p);
    const force = optBool(p, "force");
    this.requireWrite(who, this.tenantOf(v));
    v.scheduledForDeletion = true;
    const delay = this.opts.eraseDelayMs ?? 0;
    if (force || delay <= 0) {
      this.removeVolume(v);
    } else if (!this.eraseTimers.has(v.uuid) && Number.isFinite(delay)) {
      this.eraseTimers.set(
        v.uuid,
        setTimeout(() => {
          this.eraseTimers.delete(v.uuid);
          if (this.volumes.get(v.uuid) === v) this.removeVolume(v);
        }, delay),
      );
    }
    return {};
  }

  private volumeEntry(v: StoredVolume): Record<string, unknown> {
    const e: Record<string, unknown> = {
      volume_uuid: v.uuid,
      name: v.name,
      tenant_domain: v.tenantId,
      root_user_id: v.rootUserId,
      root_group_id: v.rootGroupId,
    };
    if (v.configurationName !== undefined) e["configuration_name"] = v.configurationName;
    const quota = this.volumeQuota(v.uuid);
    if (quota !== undefined) e["quota_disk_space_bytes"] = quota;
    Object.assign(e, {
      used_disk_space_bytes: v.usedBytes,
      used_logical_space_bytes: v.usedBytes,
      file_count: 0,
      directory_count: 1,
      scheduled_for_deletion: v.scheduledForDeletion,
      creation_timestamp_ms: v.createdMs,
    });
    return e;
  }

  private getVolumeList(p: Params, who: Principal): Record<string, unknown> {
    const ref = optString(p, "tenant_domain");
    let tenantId: string | undefined;
    if (ref !== undefined) {
      const tenant = this.tenantByRef(ref);
      this.requireRead(who, tenant);
      tenantId = tenant.id;
    }
    const uuids = optStringList(p, "volume_uuid").map((u) => u.toLowerCase());
    const out = [...this.volumes.values()]
      .filter((v) => tenantId === undefined || v.tenantId === tenantId)
      .filter((v) => uuids.length === 0 || uuids.includes(v.uuid.toLowerCase()))
      .filter((v) => this.canRead(who, v.tenantId))
      .map((v) => this.volumeEntry(v));
    return this.list({}, "volume", out);
  }

  // ---- quotas ---------------------------------------------------------------------

  private volumeQuota(uuid: string): number | undefined {
    const q = this.quotas.find((x) => x.consumer[0]?.type === "VOLUME" && x.consumer[0].identifier === uuid);
    return q?.limits.find((l) => l.type === "LOGICAL_DISK_SPACE")?.value;
  }

  private putQuota(consumer: FakeQuota["consumer"][number], limits: FakeQuota["limits"]): void {
    const existing = this.quotas.find(
      (q) =>
        q.consumer[0]?.type === consumer.type &&
        q.consumer[0].identifier === consumer.identifier &&
        q.consumer[0].tenant_id === consumer.tenant_id,
    );
    if (existing === undefined) {
      this.quotas.push({ id: crypto.randomUUID(), consumer: [{ ...consumer }], limits: limits.map((l) => ({ ...l })) });
      return;
    }
    for (const l of limits) {
      const same = existing.limits.find((x) => x.type === l.type);
      if (same !== undefined) same.value = l.value;
      else existing.limits.push({ ...l });
    }
  }

  private parseConsumer(raw: unknown): FakeQuota["consumer"][number] {
    if (!isPlainObject(raw)) throw invalidRequest();
    const type = enumValue(raw["type"], CONSUMER_TYPES, CONSUMER_TYPE_NUMBERS);
    const c: FakeQuota["consumer"][number] = { type };
    const identifier = optString(raw, "identifier") ?? optString(raw, "volume_id");
    if (identifier !== undefined) c.identifier = identifier;
    const tenantId = optString(raw, "tenant_id");
    if (tenantId !== undefined) c.tenant_id = tenantId;
    return c;
  }

  private setQuota(p: Params, who: Principal): Record<string, unknown> {
    // Validate everything first, then apply: the request is atomic.
    const updates = optList(p, "quotas").map((raw) => {
      if (!isPlainObject(raw)) throw invalidRequest();
      const consumers = optList(raw, "consumer").map((c) => this.parseConsumer(c));
      const consumer = consumers[0];
      if (consumer === undefined) throw this.fail("INVALID_ARGUMENT", "Quota without consumer");
      const limits = optList(raw, "limits").map((l) => {
        if (!isPlainObject(l)) throw invalidRequest();
        const type = enumValue(l["type"], RESOURCE_TYPES, RESOURCE_TYPE_NUMBERS);
        const value = optInteger(l, "value") ?? 0;
        if (value < 0) throw this.fail("INVALID_ARGUMENT", `Quota limit ${value} is negative`);
        return { type, value };
      });
      if (consumer.type === "VOLUME") {
        const id = consumer.identifier ?? "";
        const v = this.volumes.get(id) ?? this.volumes.get(id.toLowerCase());
        if (v === undefined) throw this.fail("ENTITY_NOT_FOUND", `Volume '${id}' not found`);
        consumer.identifier = v.uuid;
        this.requireWrite(who, this.tenantOf(v));
      } else if (consumer.type === "TENANT") {
        const tenant = this.tenantByRef(consumer.identifier ?? consumer.tenant_id ?? "");
        this.requireWrite(who, tenant);
        consumer.identifier = tenant.id;
      } else {
        this.requireSuperUser(who);
      }
      return { consumer, limits };
    });
    for (const u of updates) this.putQuota(u.consumer, u.limits);
    return {};
  }

  private getQuota(p: Params, who: Principal): Record<string, unknown> {
    const ref = optString(p, "tenant_domain");
    const tenant = ref === undefined ? undefined : this.tenantByRef(ref);
    if (tenant !== undefined) this.requireRead(who, tenant);
    const only = optList(p, "only_entity").map((c) => this.parseConsumer(c));
    const onlyTypes = optList(p, "only_resource_type").map((t) => enumValue(t, RESOURCE_TYPES, RESOURCE_TYPE_NUMBERS));
    const out: Record<string, unknown>[] = [];
    for (const q of this.quotas) {
      const c = q.consumer[0];
      if (c === undefined) continue;
      const owner =
        c.type === "VOLUME" ? this.volumes.get(c.identifier ?? "")?.tenantId : c.type === "TENANT" ? c.identifier : undefined;
      if (owner === undefined ? who.role !== "SUPER_USER" : !this.canRead(who, owner)) continue;
      if (tenant !== undefined && owner !== tenant.id) continue;
      if (only.length > 0 && !only.some((o) => o.type === c.type && (o.identifier === undefined || o.identifier === c.identifier)))
        continue;
      const limits = q.limits.filter((l) => onlyTypes.length === 0 || onlyTypes.includes(l.type));
      if (limits.length === 0) continue;
      const used = c.type === "VOLUME" ? (this.volumes.get(c.identifier ?? "")?.usedBytes ?? 0) : 0;
      out.push({
        id: q.id,
        consumer: q.consumer.map((x) => ({ ...x })),
        limits: limits.map((l) => ({ ...l })),
        current_usage: limits.map((l) => ({ type: l.type, value: l.type.endsWith("DISK_SPACE") ? used : 0 })),
        limit_type: "QUOTA",
      });
    }
    return this.list({}, "quotas", out);
  }

  // ---- tenants --------------------------------------------------------------------

  private resolveTenantName(p: Params, who: Principal): Record<string, unknown> {
    const name = optString(p, "tenant_name");
    if (name === undefined) throw this.fail("INVALID_ARGUMENT", "tenant_name must be set");
    const t = this.tenants.find((x) => x.name === name);
    if (t === undefined || !this.canRead(who, t.id)) throw this.fail("ENTITY_NOT_FOUND", `Tenant '${name}' does not exist.`);
    return { tenant_id: t.id };
  }

  private tenantEntry(t: FakeTenant): Record<string, unknown> {
    return { tenant_id: t.id, name: t.name, restrict_to_network: [], volume_access: [] };
  }

  private getTenant(p: Params, who: Principal): Record<string, unknown> {
    const ids = optStringList(p, "tenant_id");
    let out: FakeTenant[];
    if (ids.length === 0) {
      out = this.tenants.filter((t) => this.canRead(who, t.id));
    } else {
      out = ids.map((id) => {
        const t = this.tenants.find((x) => x.id.toLowerCase() === id.toLowerCase());
        if (t === undefined) throw this.fail("ENTITY_NOT_FOUND", `Tenant '${id}' does not exist.`);
        this.requireRead(who, t);
        return t;
      });
    }
    return this.list({}, "tenant", out.map((t) => this.tenantEntry(t)));
  }

  private setTenant(p: Params, who: Principal): Record<string, unknown> {
    const raw = p["tenant"];
    if (!isPlainObject(raw)) throw invalidRequest();
    const name = optString(raw, "name");
    const id = optString(raw, "tenant_id");
    if (id !== undefined) {
      const t = this.tenants.find((x) => x.id === id);
      if (t === undefined) throw this.fail("ENTITY_NOT_FOUND", `Tenant '${id}' does not exist.`);
      this.requireWrite(who, t);
      if (name !== undefined && name !== t.name) {
        const clash = this.tenants.find((x) => x.name === name);
        if (clash !== undefined) throw this.fail("ENTITY_EXISTS_ALREADY", `Tenant name ${name} is already used by tenant ${clash.id}`);
        t.name = name;
      }
      return { tenant_id: t.id };
    }
    this.requireSuperUser(who);
    if (name === undefined) throw this.fail("INVALID_ARGUMENT", "Tenant name must not be empty");
    const clash = this.tenants.find((x) => x.name === name);
    if (clash !== undefined) throw this.fail("ENTITY_EXISTS_ALREADY", `Tenant name ${name} is already used by tenant ${clash.id}`);
    const t = { id: crypto.randomUUID(), name };
    this.tenants.push(t);
    return { tenant_id: t.id };
  }

  private deleteTenant(p: Params, who: Principal): Record<string, unknown> {
    const id = optString(p, "tenant_id");
    if (id === undefined) throw this.fail("INVALID_ARGUMENT", "tenant_id must be set");
    const t = this.tenantByRef(id);
    this.requireSuperUser(who);
    if ([...this.volumes.values()].some((v) => v.tenantId === t.id))
      throw this.fail("INVALID_OPERATION", `Tenant '${t.id}' still has volumes`);
    this.tenants.splice(this.tenants.indexOf(t), 1);
    this.quotas = this.quotas.filter((q) => !(q.consumer[0]?.type === "TENANT" && q.consumer[0].identifier === t.id));
    return {};
  }

  private whoAmI(who: Principal): Record<string, unknown> {
    const ids = [...who.tenantIds];
    return {
      user_id: who.name,
      user_name: who.name,
      primary_group: who.primaryGroup,
      group: who.groups,
      management_role: who.role,
      member_of_tenant: ids,
      admin_of_tenant: who.role === "TENANT_ADMIN" ? ids : [],
    };
  }
}

/** access_mode: a number, or a string of octal digits ("777"); stored as given. */
function parseAccessMode(v: unknown): number | string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === "number" && Number.isSafeInteger(v) && v >= 0) return v;
  if (typeof v === "string" && /^[0-7]{1,4}$/.test(v)) return v;
  throw invalidRequest();
}
