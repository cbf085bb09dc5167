/**
 * Public types of the fake Quobyte management API (see fake-quobyte.ts and
 * /work/shared/reference/quobyte-api.md §2 and §5).
 */

export type FakeRole = "SUPER_USER" | "TENANT_ADMIN" | "MEMBER";

export interface FakeUser {
  name: string;
  password: string;
  /** Default SUPER_USER. TENANT_ADMIN may write in its tenants; MEMBER may only read them. */
  role?: FakeRole;
  /** Tenant ids (or names) the user administers (TENANT_ADMIN) or belongs to (MEMBER). */
  tenants?: string[];
  /** Reported by whoAmI; default "users". */
  primaryGroup?: string;
  /** Reported by whoAmI; default []. */
  groups?: string[];
}

export interface FakeTenant {
  /** v4 UUID */
  id: string;
  name: string;
}

export interface FakeLabel {
  name: string;
  value: string;
}

export interface FakeVolume {
  uuid: string;
  name: string;
  tenantId: string;
  rootUserId: string;
  rootGroupId: string;
  /** As the client sent it: 777, "777", or undefined when absent. */
  accessMode: number | string | undefined;
  configurationName: string | undefined;
  createdMs: number;
  scheduledForDeletion: boolean;
  /** LOGICAL_DISK_SPACE limit of the volume's VOLUME quota, if any. */
  quotaBytes?: number;
  usedBytes: number;
  /** `label` of createVolume, verbatim. */
  labels?: FakeLabel[];
}

/**
 * Faults, consumed one per matching authenticated request, in queue order.
 * Faults with `afterApply: true` first execute the call (state changes happen),
 * then answer with the fault; by default the call is not executed.
 * "null-result", "numeric-id" and "slow" always execute the call.
 */
export type FakeFault =
  | { kind: "hang"; afterApply?: boolean } // accept, never answer (until stop)
  | { kind: "drop"; afterApply?: boolean } // close the connection without an answer
  | { kind: "http-error"; status: number; afterApply?: boolean } // e.g. 500/502/503 with an HTML body
  | { kind: "html-200"; afterApply?: boolean } // 200 with an HTML body
  | { kind: "unauthorized" } // 401 with HTML body even with right credentials
  | { kind: "rpc-error"; code?: number; message: string } // message sent verbatim
  | { kind: "null-result" }
  | { kind: "numeric-id" }
  | { kind: "slow"; ms: number };

export type FakeMountTreeLayout = "name" | "uuid" | "both";

export interface FakeQuobyteOptions {
  /** Default: one SUPER_USER {name:"admin", password:"s3cret-Pa55"}. */
  users?: FakeUser[];
  /** Default: one tenant {name:"My Tenant", id:<random v4>}. */
  tenants?: FakeTenant[];
  /** Default ["BASE"]. */
  configurations?: string[];
  /** Default false: an unknown configuration_name is ENTITY_NOT_FOUND; true = 3.x behaviour (ignored). */
  ignoreConfigurationName?: boolean;
  /** Default true: Set-Cookie on successful Basic auth, accept the cookie afterwards. */
  cookies?: boolean;
  /** Default true: "ENTITY_EXISTS_ALREADY/POSIX_ERROR_NONE: ... /" vs "ENTITY_EXISTS_ALREADY: ...". */
  posixSuffix?: boolean;
  /** Default "uuid-only"; applies to createVolume.tenant_id/tenant_domain, resolveVolumeName and getVolumeList.tenant_domain, getQuota.tenant_domain. */
  tenantRefs?: "uuid-only" | "uuid-or-name";
  /** Tenant id used by createVolume when neither tenant_id nor tenant_domain is given; default: none (INVALID_ARGUMENT). */
  defaultTenantId?: string;
  /** If set, each volume is materialised as a directory under this path ... */
  mountTree?: string;
  /** "name" (default): <tree>/<name>; "uuid": <tree>/<uuid>; "both": directory <tree>/<name> plus symlink <tree>/<uuid> -> <name>. */
  mountTreeLayout?: FakeMountTreeLayout;
  /** ... after this delay (default 0 = before the createVolume answer; Infinity = never). */
  mountDelayMs?: number;
  /** eraseVolume without force: volume removed after this delay (default 0 = at once). */
  eraseDelayMs?: number;
  /** Default false: empty lists in results are []; true: omitted (protobuf style). */
  omitEmptyLists?: boolean;
  /** PEM contents: serve https. */
  tls?: { cert: string; key: string };
  /** Default 0 (any free port); a fixed one lets a test bring "the same API" back up. */
  port?: number;
}

export interface FakeRequestLog {
  /** Date.now() when the request body had been read. */
  time: number;
  /** Date.now() when the answer was decided (undefined while in flight or hung). */
  endTime?: number;
  /** URL path, e.g. "/". */
  path: string;
  /** HTTP method (only POST is served). */
  httpMethod: string;
  /** "cookie" if a valid cookie authenticated the request (or only an invalid cookie was sent), "basic" if Basic credentials were evaluated, else "none". */
  auth: "basic" | "cookie" | "none";
  /** Whether the request carried an Authorization header / a session cookie. */
  sentBasic: boolean;
  sentCookie: boolean;
  /** Whether authentication succeeded. */
  authOk: boolean;
  /** Authenticated user, or the user name claimed in failed Basic credentials. */
  user?: string;
  /** Whether a Set-Cookie header was sent. */
  setCookie: boolean;
  rawBody: string;
  method?: string;
  params?: Record<string, unknown>;
  /** The request id as received (before stringification). */
  id?: unknown;
  /** params.retry as received. */
  retry?: unknown;
  /** Kind of the fault applied to this request, if any. */
  fault?: FakeFault["kind"];
  /** HTTP status; 0 for dropped, hung or in-flight requests. */
  status: number;
  /** Response body text ("" for dropped/hung). */
  response: string;
}

export interface FakeQuota {
  id: string;
  consumer: { type: string; identifier?: string; tenant_id?: string }[];
  limits: { type: string; value: number }[];
}

export interface FakeQuobyte {
  /** e.g. http://127.0.0.1:PORT/ (https:// with tls) */
  readonly url: string;
  readonly port: number;
  /** Live array, cleared (not replaced) by reset(). */
  readonly log: FakeRequestLog[];
  /** Copy of the current tenants. */
  readonly tenants: FakeTenant[];
  volumes(): FakeVolume[];
  quotas(): FakeQuota[];
  /** Queue a fault; consumed per matching request; default times 1 (Infinity allowed). */
  injectFault(method: string | "*", fault: FakeFault, times?: number): void;
  /** Remove all queued faults. */
  clearFaults(): void;
  /** Number of fault applications still queued. */
  pendingFaults(): number;
  invalidateCookies(): void;
  /** Number of currently valid session cookies. */
  activeCookies(): number;
  /** Seed a volume (no authorisation checks; throws on unknown tenant or duplicate name). */
  addVolume(v: Partial<FakeVolume> & { name: string; tenantId: string }): FakeVolume;
  /** Change usage counters and the like of an existing volume. */
  updateVolume(uuid: string, patch: Partial<Pick<FakeVolume, "usedBytes" | "rootUserId" | "rootGroupId">>): FakeVolume;
  /** Seed a tenant (id defaults to a random v4 UUID). */
  addTenant(t: { name: string; id?: string }): FakeTenant;
  /** Path of the volume's mount-tree directory (undefined without mountTree). */
  mountPathOf(volume: Pick<FakeVolume, "name" | "uuid">): string | undefined;
  /** Clear volumes, quotas, log, faults, cookies and timers; restore the seeded tenants. */
  reset(): void;
  /** Closes the server and any hung connections. */
  stop(): Promise<void>;
}
