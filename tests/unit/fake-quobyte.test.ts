/** Self-test of the fake Quobyte management API (tests/support/fake-quobyte.ts). */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, lstatSync, readlinkSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import {
  COOKIE_NAME,
  isUuidV4,
  startFakeQuobyte,
  type FakeQuobyte,
  type FakeQuobyteOptions,
} from "../support/fake-quobyte.ts";
import { makeTempDir, removeTempDir } from "../support/tmp.ts";

const ADMIN = { user: "admin", password: "s3cret-Pa55" };

function basic(user: string, password: string, scheme = "Basic"): string {
  return `${scheme} ${Buffer.from(`${user}:${password}`).toString("base64")}`;
}

interface CallOptions {
  auth?: { user: string; password: string } | null; // null = no Authorization header
  cookie?: string;
  id?: unknown;
  path?: string;
  signal?: AbortSignal;
  tls?: { ca: string };
}

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  json: Record<string, unknown> | undefined;
}

async function post(fake: FakeQuobyte, body: string, o: CallOptions = {}): Promise<Reply> {
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  const auth = o.auth === undefined ? ADMIN : o.auth;
  if (auth !== null) headers["Authorization"] = basic(auth.user, auth.password);
  if (o.cookie !== undefined) headers["Cookie"] = `${COOKIE_NAME}=${o.cookie}`;
  const url = new URL(o.path ?? "/", fake.url).href;
  const res = await fetch(url, {
    method: "POST",
    headers,
    body,
    ...(o.signal !== undefined ? { signal: o.signal } : {}),
    ...(o.tls !== undefined ? { tls: o.tls } : {}),
  });
  const text = await res.text();
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

async function call(fake: FakeQuobyte, method: string, params?: Record<string, unknown>, o: CallOptions = {}): Promise<Reply> {
  const envelope: Record<string, unknown> = { jsonrpc: "2.0", id: o.id ?? "1", method };
  if (params !== undefined) envelope["params"] = params;
  return post(fake, JSON.stringify(envelope), o);
}

/** Result of a successful call (fails the test otherwise). */
async function ok(fake: FakeQuobyte, method: string, params?: Record<string, unknown>, o?: CallOptions): Promise<Record<string, unknown>> {
  const r = await call(fake, method, params, o);
  expect(r.status).toBe(200);
  expect(r.json?.["error"]).toBeUndefined();
  const result = r.json?.["result"];
  expect(typeof result).toBe("object");
  return result as Record<string, unknown>;
}

/** Error of a failing call (fails the test otherwise). */
async function err(fake: FakeQuobyte, method: string, params?: Record<string, unknown>, o?: CallOptions): Promise<{ code: number; message: string }> {
  const r = await call(fake, method, params, o);
  expect(r.status).toBe(200);
  expect(r.json?.["result"]).toBeUndefined();
  return r.json?.["error"] as { code: number; message: string };
}

function sessionCookie(headers: Headers): string | undefined {
  const sc = headers.get("set-cookie");
  return sc === null ? undefined : new RegExp(`^${COOKIE_NAME}=([^;]+)`).exec(sc)?.[1];
}

async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await Bun.sleep(10);
  }
  return cond();
}

const started: FakeQuobyte[] = [];
async function fakeWith(options: FakeQuobyteOptions = {}): Promise<FakeQuobyte> {
  const f = await startFakeQuobyte(options);
  started.push(f);
  return f;
}
afterAll(async () => {
  await Promise.all(started.map((f) => f.stop()));
});

describe("envelope", () => {
  let fake: FakeQuobyte;
  beforeAll(async () => {
    fake = await fakeWith();
  });
  afterEach(() => fake.reset());

  test("url is loopback with an ephemeral port", () => {
    expect(fake.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    expect(fake.port).toBeGreaterThan(0);
  });

  test("string id echoed, numeric id stringified, absent id null, params absent", async () => {
    const a = await call(fake, "getInformation", undefined, { id: "4037200794235010051" });
    expect(a.json).toEqual({ jsonrpc: "2.0", id: "4037200794235010051", result: {} });
    expect(a.headers.get("content-type")).toStartWith("application/json");
    const b = await call(fake, "getInformation", {}, { id: 42 });
    expect(b.json?.["id"]).toBe("42");
    const c = await post(fake, JSON.stringify({ jsonrpc: "2.0", method: "getInformation" }));
    expect(c.json).toEqual({ jsonrpc: "2.0", id: null, result: {} });
    expect(fake.log.map((l) => l.params)).toEqual([{}, {}, {}]);
  });

  test("non-JSON body: -32700 with HTTP 200", async () => {
    const r = await post(fake, "this is not json");
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ jsonrpc: "2.0", id: null, error: { code: -32700, message: "" } });
  });

  test("bad envelope or params: -32600", async () => {
    expect((await post(fake, "[1,2]")).json?.["error"]).toEqual({ code: -32600, message: "" });
    expect((await post(fake, JSON.stringify({ id: "7", params: {} }))).json).toEqual({
      jsonrpc: "2.0",
      id: "7",
      error: { code: -32600, message: "" },
    });
    expect((await post(fake, JSON.stringify({ id: "8", method: "whoAmI", params: [1] }))).json?.["error"]).toEqual({
      code: -32600,
      message: "",
    });
    expect(await err(fake, "createVolume", { name: 5, tenant_id: fake.tenants[0]!.id })).toEqual({ code: -32600, message: "" });
  });

  test("unknown method: -32601 with empty message", async () => {
    const r = await call(fake, "getClientListRequest", {}, { id: "9" });
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ jsonrpc: "2.0", id: "9", error: { code: -32601, message: "" } });
  });

  test("any path is served; other HTTP methods get 405 HTML", async () => {
    expect((await call(fake, "getInformation", {}, { path: "/api/v1" })).json?.["result"]).toEqual({});
    const g = await fetch(fake.url, { headers: { Authorization: basic(ADMIN.user, ADMIN.password) } });
    expect(g.status).toBe(405);
    expect(g.headers.get("content-type")).toStartWith("text/html");
    expect(await g.text()).toContain("<html>");
    expect(fake.log.map((l) => [l.path, l.httpMethod, l.status])).toEqual([
      ["/api/v1", "POST", 200],
      ["/", "GET", 405],
    ]);
  });

  test("params.retry and the request are logged", async () => {
    await call(fake, "getInformation", { retry: "INTERACTIVE" }, { id: 3 });
    const [entry] = fake.log;
    expect(entry).toMatchObject({
      path: "/",
      auth: "basic",
      user: "admin",
      method: "getInformation",
      id: 3,
      retry: "INTERACTIVE",
      status: 200,
      setCookie: true,
      response: '{"jsonrpc":"2.0","id":"3","result":{}}',
    });
    expect(entry?.rawBody).toContain('"retry":"INTERACTIVE"');
    expect(entry?.endTime).toBeGreaterThanOrEqual(entry?.time ?? Infinity);
  });
});

describe("authentication", () => {
  test("Basic sets a cookie; the cookie alone then authenticates; invalidated cookie gets 401", async () => {
    const fake = await fakeWith();
    const first = await call(fake, "whoAmI", {});
    expect(first.status).toBe(200);
    expect(first.headers.get("set-cookie")).toMatch(new RegExp(`^${COOKIE_NAME}=[0-9a-f]+; Path=/; HttpOnly$`));
    const cookie = sessionCookie(first.headers)!;
    const second = await call(fake, "whoAmI", {}, { auth: null, cookie });
    expect(second.status).toBe(200);
    expect(second.headers.get("set-cookie")).toBeNull();
    expect((second.json?.["result"] as Record<string, unknown>)["user_name"]).toBe("admin");
    expect(fake.activeCookies()).toBe(1);
    fake.invalidateCookies();
    const third = await call(fake, "whoAmI", {}, { auth: null, cookie });
    expect(third.status).toBe(401);
    expect(third.headers.get("www-authenticate")).toBe('Basic realm="Quobyte"');
    expect(third.headers.get("content-type")).toStartWith("text/html");
    expect(third.json).toBeUndefined();
    // a correct client resends with Basic and gets a new cookie
    const fourth = await call(fake, "whoAmI", {}, { cookie });
    expect(fourth.status).toBe(200);
    expect(sessionCookie(fourth.headers)).not.toBe(cookie);
    expect(fake.log.map((l) => [l.auth, l.status, l.setCookie])).toEqual([
      ["basic", 200, true],
      ["cookie", 200, false],
      ["cookie", 401, false],
      ["basic", 200, true],
    ]);
  });

  test("wrong password, unknown user, missing or malformed credentials: 401 HTML", async () => {
    const fake = await fakeWith();
    for (const auth of [{ user: "admin", password: "wrong" }, { user: "nobody", password: "s3cret-Pa55" }, null]) {
      const r = await call(fake, "getInformation", {}, { auth });
      expect(r.status).toBe(401);
      expect(r.text).toContain("<html>");
      expect(r.headers.get("www-authenticate")).toBe('Basic realm="Quobyte"');
      expect(r.headers.get("set-cookie")).toBeNull();
    }
    const bearer = await fetch(fake.url, { method: "POST", headers: { Authorization: "Bearer xyz" }, body: "{}" });
    expect(bearer.status).toBe(401);
    expect(fake.log.map((l) => [l.auth, l.user, l.authOk])).toEqual([
      ["basic", "admin", false],
      ["basic", "nobody", false],
      ["none", undefined, false],
      ["basic", undefined, false],
    ]);
  });

  test("scheme is case-insensitive (BASIC, basic)", async () => {
    const fake = await fakeWith();
    for (const scheme of ["BASIC", "basic"]) {
      const r = await fetch(fake.url, {
        method: "POST",
        headers: { Authorization: basic(ADMIN.user, ADMIN.password, scheme) },
        body: JSON.stringify({ jsonrpc: "2.0", id: "1", method: "getInformation" }),
      });
      expect(r.status).toBe(200);
    }
  });

  test("cookies off: no Set-Cookie, cookies ignored, Basic required every time", async () => {
    const fake = await fakeWith({ cookies: false, users: [{ name: "u", password: "p" }] });
    const r = await call(fake, "getInformation", {}, { auth: { user: "u", password: "p" } });
    expect(r.status).toBe(200);
    expect(r.headers.get("set-cookie")).toBeNull();
    expect((await call(fake, "getInformation", {}, { auth: null, cookie: "anything" })).status).toBe(401);
    expect(fake.log[1]).toMatchObject({ auth: "none", sentCookie: true, authOk: false });
  });

  test("a valid cookie wins over wrong Basic credentials", async () => {
    const fake = await fakeWith();
    const cookie = sessionCookie((await call(fake, "getInformation", {})).headers)!;
    const r = await call(fake, "getInformation", {}, { cookie, auth: { user: "admin", password: "bad" } });
    expect(r.status).toBe(200);
    expect(fake.log[1]?.auth).toBe("cookie");
  });
});

describe("methods", () => {
  let fake: FakeQuobyte;
  let tenant: string;
  beforeAll(async () => {
    fake = await fakeWith({ configurations: ["BASE", "SSD_ONLY"] });
    tenant = fake.tenants[0]!.id;
  });
  afterEach(() => fake.reset());

  test("default tenant is 'My Tenant' with a v4 uuid", () => {
    expect(fake.tenants).toHaveLength(1);
    expect(fake.tenants[0]!.name).toBe("My Tenant");
    expect(isUuidV4(tenant)).toBe(true);
  });

  test("createVolume: new v4 uuid, stored as given", async () => {
    const r = await ok(fake, "createVolume", {
      name: "vol",
      tenant_id: tenant,
      root_user_id: "docker",
      root_group_id: "docker",
      configuration_name: "SSD_ONLY",
      access_mode: "777",
      label: [{ name: "k", value: "v" }],
      retry: "INTERACTIVE",
    });
    expect(Object.keys(r)).toEqual(["volume_uuid"]);
    expect(isUuidV4(r["volume_uuid"] as string)).toBe(true);
    const [v] = fake.volumes();
    expect(v).toMatchObject({
      uuid: r["volume_uuid"] as string,
      name: "vol",
      tenantId: tenant,
      rootUserId: "docker",
      rootGroupId: "docker",
      accessMode: "777",
      configurationName: "SSD_ONLY",
      scheduledForDeletion: false,
      usedBytes: 0,
      labels: [{ name: "k", value: "v" }],
    });
    expect(Math.abs(v!.createdMs - Date.now())).toBeLessThan(5000);
    await ok(fake, "createVolume", { name: "vol2", tenant_id: tenant, access_mode: 1777 });
    await ok(fake, "createVolume", { name: "vol3", tenant_id: tenant });
    expect(fake.volumes().map((x) => [x.name, x.accessMode, x.rootUserId, x.configurationName])).toEqual([
      ["vol", "777", "docker", "SSD_ONLY"],
      ["vol2", 1777, "root", undefined],
      ["vol3", undefined, "root", undefined],
    ]);
  });

  test("createVolume errors", async () => {
    const v = await ok(fake, "createVolume", { name: "vol", tenant_id: tenant });
    expect(await err(fake, "createVolume", { name: "vol", tenant_id: tenant })).toEqual({
      code: 3,
      message: `ENTITY_EXISTS_ALREADY/POSIX_ERROR_NONE: Volume name vol is already used by volume ${v["volume_uuid"] as string} /`,
    });
    expect(await err(fake, "createVolume", { name: "x", tenant_id: "NO-DEFAULT-CHANGE-ME" })).toEqual({
      code: 2,
      message: "ENTITY_NOT_FOUND/POSIX_ERROR_NONE: Tenant 'NO-DEFAULT-CHANGE-ME' does not exist. /",
    });
    expect(await err(fake, "createVolume", { name: "x", tenant_id: tenant, configuration_name: "NOPE" })).toEqual({
      code: 2,
      message: "ENTITY_NOT_FOUND/POSIX_ERROR_NONE: Configuration 'NOPE' does not exist. /",
    });
    expect((await err(fake, "createVolume", { tenant_id: tenant })).message).toStartWith("INVALID_ARGUMENT/POSIX_ERROR_NONE: ");
    expect((await err(fake, "createVolume", { name: "a/b", tenant_id: tenant })).message).toStartWith("INVALID_ARGUMENT");
    expect((await err(fake, "createVolume", { name: "x" })).message).toStartWith("INVALID_ARGUMENT");
    expect(await err(fake, "createVolume", { name: "x", tenant_id: tenant, access_mode: "rwx" })).toEqual({ code: -32600, message: "" });
    expect(fake.volumes()).toHaveLength(1);
  });

  test("deprecated tenant_domain works as tenant_id in createVolume", async () => {
    await ok(fake, "createVolume", { name: "vol", tenant_domain: tenant });
    expect(fake.volumes()[0]?.tenantId).toBe(tenant);
  });

  test("uuid-only mode: tenant names are not tenant references", async () => {
    const msg = "ENTITY_NOT_FOUND/POSIX_ERROR_NONE: Tenant 'My Tenant' does not exist. /";
    expect((await err(fake, "createVolume", { name: "x", tenant_id: "My Tenant" })).message).toBe(msg);
    expect((await err(fake, "resolveVolumeName", { volume_name: "x", tenant_domain: "My Tenant" })).message).toBe(msg);
    expect((await err(fake, "getVolumeList", { tenant_domain: "My Tenant" })).message).toBe(msg);
  });

  test("resolveVolumeName: uuid or code 2 not found", async () => {
    const v = await ok(fake, "createVolume", { name: "vol", tenant_id: tenant });
    expect(await ok(fake, "resolveVolumeName", { volume_name: "vol", tenant_domain: tenant })).toEqual({
      volume_uuid: v["volume_uuid"],
    });
    expect(await ok(fake, "resolveVolumeName", { volume_name: "vol" })).toEqual({ volume_uuid: v["volume_uuid"] });
    expect(await err(fake, "resolveVolumeName", { volume_name: "nope", tenant_domain: tenant })).toEqual({
      code: 2,
      message: "ENTITY_NOT_FOUND/POSIX_ERROR_NONE: Volume 'nope' not found /",
    });
  });

  test("deleteVolume removes the volume and its quotas; unknown uuid is ENTITY_NOT_FOUND", async () => {
    const v = await ok(fake, "createVolume", { name: "vol", tenant_id: tenant });
    const uuid = v["volume_uuid"] as string;
    await ok(fake, "setQuota", {
      quotas: [{ consumer: [{ type: "VOLUME", identifier: uuid }], limits: [{ type: "LOGICAL_DISK_SPACE", value: 1024 }] }],
    });
    expect(fake.quotas()).toHaveLength(1);
    expect(await ok(fake, "deleteVolume", { volume_uuid: uuid })).toEqual({});
    expect(fake.volumes()).toEqual([]);
    expect(fake.quotas()).toEqual([]);
    expect(await err(fake, "deleteVolume", { volume_uuid: uuid })).toEqual({
      code: 2,
      message: `ENTITY_NOT_FOUND/POSIX_ERROR_NONE: Volume '${uuid}' not found /`,
    });
  });

  test("setQuota: string enums and lists, numeric enums and single objects; getQuota; getVolumeList", async () => {
    const uuid = (await ok(fake, "createVolume", { name: "vol", tenant_id: tenant }))["volume_uuid"] as string;
    await ok(fake, "setQuota", {
      quotas: [{ consumer: [{ type: "VOLUME", identifier: uuid }], limits: [{ type: "LOGICAL_DISK_SPACE", value: 1073741824 }] }],
    });
    expect(fake.volumes()[0]?.quotaBytes).toBe(1073741824);
    // manila style: one object, numbers, replaces the same consumer and resource type
    await ok(fake, "setQuota", { quotas: { consumer: { type: 3, identifier: uuid }, limits: { type: 5, value: 2048 } } });
    expect(fake.quotas()).toEqual([
      { id: expect.any(String), consumer: [{ type: "VOLUME", identifier: uuid }], limits: [{ type: "LOGICAL_DISK_SPACE", value: 2048 }] },
    ]);
    fake.updateVolume(uuid, { usedBytes: 100 });
    const q = await ok(fake, "getQuota", { tenant_domain: tenant });
    expect(q["quotas"]).toEqual([
      {
        id: expect.any(String),
        consumer: [{ type: "VOLUME", identifier: uuid }],
        limits: [{ type: "LOGICAL_DISK_SPACE", value: 2048 }],
        current_usage: [{ type: "LOGICAL_DISK_SPACE", value: 100 }],
        limit_type: "QUOTA",
      },
    ]);
    const list = await ok(fake, "getVolumeList", { volume_uuid: uuid });
    expect(list["volume"]).toEqual([
      {
        volume_uuid: uuid,
        name: "vol",
        tenant_domain: tenant,
        root_user_id: "root",
        root_group_id: "root",
        quota_disk_space_bytes: 2048,
        used_disk_space_bytes: 100,
        used_logical_space_bytes: 100,
        file_count: 0,
        directory_count: 1,
        scheduled_for_deletion: false,
        creation_timestamp_ms: expect.any(Number),
      },
    ]);
    const missing = crypto.randomUUID();
    expect(
      await err(fake, "setQuota", {
        quotas: [{ consumer: [{ type: "VOLUME", identifier: missing }], limits: [{ type: "LOGICAL_DISK_SPACE", value: 1 }] }],
      }),
    ).toEqual({ code: 2, message: `ENTITY_NOT_FOUND/POSIX_ERROR_NONE: Volume '${missing}' not found /` });
    expect(
      await err(fake, "setQuota", { quotas: [{ consumer: [{ type: 99, identifier: uuid }], limits: [] }] }),
    ).toEqual({ code: -32600, message: "" });
  });

  test("getVolumeList: all, by tenant, by uuid string or list; empty list is []", async () => {
    const other = fake.addTenant({ name: "Other" });
    const a = fake.addVolume({ name: "a", tenantId: tenant });
    const b = fake.addVolume({ name: "b", tenantId: other.id, quotaBytes: 5 });
    const names = (r: Record<string, unknown>) => (r["volume"] as { name: string }[]).map((v) => v.name).sort();
    expect(names(await ok(fake, "getVolumeList", {}))).toEqual(["a", "b"]);
    expect(names(await ok(fake, "getVolumeList", { tenant_domain: other.id }))).toEqual(["b"]);
    expect(names(await ok(fake, "getVolumeList", { volume_uuid: a.uuid }))).toEqual(["a"]);
    expect(names(await ok(fake, "getVolumeList", { volume_uuid: [a.uuid, b.uuid] }))).toEqual(["a", "b"]);
    expect(await ok(fake, "getVolumeList", { volume_uuid: [crypto.randomUUID()] })).toEqual({ volume: [] });
    expect(b.quotaBytes).toBe(5);
  });

  test("eraseVolume with force removes at once; erasing again is success", async () => {
    const uuid = (await ok(fake, "createVolume", { name: "vol", tenant_id: tenant }))["volume_uuid"] as string;
    expect(await ok(fake, "eraseVolume", { volume_uuid: uuid, force: true })).toEqual({});
    expect(fake.volumes()).toEqual([]);
    expect((await err(fake, "eraseVolume", { volume_uuid: uuid })).code).toBe(2);
  });

  test("resolveTenantName, getTenant, whoAmI, getInformation, getClientList", async () => {
    const other = fake.addTenant({ name: "Other" });
    expect(await ok(fake, "resolveTenantName", { tenant_name: "My Tenant" })).toEqual({ tenant_id: tenant });
    expect(await err(fake, "resolveTenantName", { tenant_name: "Nope" })).toEqual({
      code: 2,
      message: "ENTITY_NOT_FOUND/POSIX_ERROR_NONE: Tenant 'Nope' does not exist. /",
    });
    const all = await ok(fake, "getTenant", { tenant_id: [] });
    expect((all["tenant"] as { tenant_id: string; name: string }[]).map((t) => [t.tenant_id, t.name])).toEqual([
      [tenant, "My Tenant"],
      [other.id, "Other"],
    ]);
    const one = await ok(fake, "getTenant", { tenant_id: [other.id] });
    expect(one["tenant"]).toEqual([{ tenant_id: other.id, name: "Other", restrict_to_network: [], volume_access: [] }]);
    expect((await err(fake, "getTenant", { tenant_id: [crypto.randomUUID()] })).code).toBe(2);
    expect(await ok(fake, "whoAmI", {})).toEqual({
      user_id: "admin",
      user_name: "admin",
      primary_group: "users",
      group: [],
      management_role: "SUPER_USER",
      member_of_tenant: [],
      admin_of_tenant: [],
    });
    expect(await ok(fake, "getInformation")).toEqual({});
    expect(await ok(fake, "getClientList", { tenant_domain: tenant })).toEqual({ client: [] });
  });

  test("setTenant and deleteTenant", async () => {
    const id = (await ok(fake, "setTenant", { tenant: { name: "New" } }))["tenant_id"] as string;
    expect(isUuidV4(id)).toBe(true);
    expect((await err(fake, "setTenant", { tenant: { name: "New" } })).message).toStartWith("ENTITY_EXISTS_ALREADY/");
    fake.addVolume({ name: "v", tenantId: id });
    expect((await err(fake, "deleteTenant", { tenant_id: id })).message).toStartWith("INVALID_OPERATION/");
    fake.reset();
    expect(fake.tenants.map((t) => t.name)).toEqual(["My Tenant"]);
  });

  test("concurrent creates of one name: exactly one wins", async () => {
    const replies = await Promise.all(
      Array.from({ length: 20 }, () => call(fake, "createVolume", { name: "race", tenant_id: tenant })),
    );
    const wins = replies.filter((r) => r.json?.["result"] !== undefined);
    expect(wins).toHaveLength(1);
    expect(fake.volumes()).toHaveLength(1);
    for (const r of replies.filter((x) => x.json?.["error"] !== undefined))
      expect((r.json?.["error"] as { message: string }).message).toStartWith("ENTITY_EXISTS_ALREADY/POSIX_ERROR_NONE: Volume name race");
  });

  test("labels: createVolume's labels are read back with getLabels, filtered by name and entity", async () => {
    const a = await ok(fake, "createVolume", { name: "a", tenant_id: tenant, label: [{ name: "app", value: "x" }, { name: "k", value: "1" }] });
    const b = await ok(fake, "createVolume", { name: "b", tenant_id: tenant, label: [{ name: "app", value: "y" }] });
    const byName = await ok(fake, "getLabels", { namespace: "SYSTEM", filter_entity_type: "VOLUME", label_name: "app" });
    expect(byName["label"]).toEqual([
      { namespace: "SYSTEM", entity_type: "VOLUME", entity_id: a["volume_uuid"], name: "app", value: "x" },
      { namespace: "SYSTEM", entity_type: "VOLUME", entity_id: b["volume_uuid"], name: "app", value: "y" },
    ]);
    const one = await ok(fake, "getLabels", { filter_entity_id: a["volume_uuid"] });
    expect((one["label"] as { name: string }[]).map((l) => l.name)).toEqual(["app", "k"]);
    expect((await ok(fake, "getLabels", { filter_entity_type: "TENANT" }))["label"]).toEqual([]);
  });

  test("labels: setLabels adds or replaces by name, deleteLabels removes, both need an existing volume", async () => {
    const { volume_uuid: uuid } = await ok(fake, "createVolume", { name: "v", tenant_id: tenant });
    expect(await ok(fake, "setLabels", { label: [{ entity_type: "VOLUME", entity_id: uuid, name: "app", value: "1" }] })).toEqual({});
    await ok(fake, "setLabels", { label: [{ entity_type: "VOLUME", entity_id: uuid, name: "app", value: "2" }] });
    expect(fake.volumes()[0]?.labels).toEqual([{ name: "app", value: "2" }]);
    await ok(fake, "deleteLabels", { label: [{ entity_type: "VOLUME", entity_id: uuid, name: "app" }] });
    expect(fake.volumes()[0]?.labels).toBeUndefined();
    const missing = await err(fake, "setLabels", { label: [{ entity_type: "VOLUME", entity_id: crypto.randomUUID(), name: "app", value: "1" }] });
    expect(missing.message).toStartWith("ENTITY_NOT_FOUND");
  });

  test("labels: labels die with their volume", async () => {
    const { volume_uuid: uuid } = await ok(fake, "createVolume", { name: "v", tenant_id: tenant, label: [{ name: "app", value: "1" }] });
    await ok(fake, "deleteVolume", { volume_uuid: uuid });
    expect((await ok(fake, "getLabels", { label_name: "app" }))["label"]).toEqual([]);
  });

  test("methodCounts counts requests per method until resetCounts", async () => {
    fake.resetCounts();
    await ok(fake, "getLabels", {});
    await ok(fake, "getLabels", {});
    await ok(fake, "whoAmI", {});
    expect(fake.methodCounts()).toEqual({ getLabels: 2, whoAmI: 1 });
    fake.resetCounts();
    expect(fake.methodCounts()).toEqual({});
  });
});

describe("modes", () => {
  test("posixSuffix off: '<TYPE>: <text>'", async () => {
    const fake = await fakeWith({ posixSuffix: false });
    const tenant = fake.tenants[0]!.id;
    const v = await ok(fake, "createVolume", { name: "vol", tenant_id: tenant });
    expect((await err(fake, "createVolume", { name: "vol", tenant_id: tenant })).message).toBe(
      `ENTITY_EXISTS_ALREADY: Volume name vol is already used by volume ${v["volume_uuid"] as string}`,
    );
    expect((await err(fake, "createVolume", { name: "x", tenant_id: "replace_me" })).message).toBe(
      "ENTITY_NOT_FOUND: Tenant 'replace_me' does not exist.",
    );
    expect(await err(fake, "resolveVolumeName", { volume_name: "nope", tenant_domain: tenant })).toEqual({
      code: 2,
      message: "ENTITY_NOT_FOUND: Volume 'nope' not found",
    });
    expect((await err(fake, "deleteVolume", { volume_uuid: "x" })).message).toBe("ENTITY_NOT_FOUND: Volume 'x' not found");
  });

  test("a duplicate of a volume scheduled for deletion is still a duplicate", async () => {
    const fake = await fakeWith({ eraseDelayMs: 150 });
    const tenant = fake.tenants[0]!.id;
    const uuid = (await ok(fake, "createVolume", { name: "vol", tenant_id: tenant }))["volume_uuid"] as string;
    await ok(fake, "eraseVolume", { volume_uuid: uuid, force: false });
    expect(fake.volumes()[0]?.scheduledForDeletion).toBe(true);
    const list = await ok(fake, "getVolumeList", { tenant_domain: tenant });
    expect((list["volume"] as { scheduled_for_deletion: boolean }[])[0]?.scheduled_for_deletion).toBe(true);
    expect((await err(fake, "createVolume", { name: "vol", tenant_id: tenant })).message).toContain(`used by volume ${uuid}`);
    expect(await ok(fake, "eraseVolume", { volume_uuid: uuid })).toEqual({}); // again: success
    expect(await waitFor(() => fake.volumes().length === 0, 2000)).toBe(true);
    await ok(fake, "createVolume", { name: "vol", tenant_id: tenant });
  });

  test("tenantRefs uuid-or-name: names accepted where tenant references are", async () => {
    const fake = await fakeWith({ tenantRefs: "uuid-or-name", tenants: [{ id: crypto.randomUUID(), name: "DEFAULT" }] });
    const tenant = fake.tenants[0]!;
    const uuid = (await ok(fake, "createVolume", { name: "vol", tenant_id: "DEFAULT" }))["volume_uuid"];
    expect(fake.volumes()[0]?.tenantId).toBe(tenant.id);
    expect(await ok(fake, "resolveVolumeName", { volume_name: "vol", tenant_domain: "DEFAULT" })).toEqual({ volume_uuid: uuid });
    expect((await ok(fake, "getVolumeList", { tenant_domain: "DEFAULT" }))["volume"]).toHaveLength(1);
    expect(await ok(fake, "createVolume", { name: "vol2", tenant_id: tenant.id.toUpperCase() })).toHaveProperty("volume_uuid");
    expect((await err(fake, "createVolume", { name: "x", tenant_id: "Nope" })).message).toBe(
      "ENTITY_NOT_FOUND/POSIX_ERROR_NONE: Tenant 'Nope' does not exist. /",
    );
  });

  test("omitEmptyLists: empty lists are left out", async () => {
    const fake = await fakeWith({ omitEmptyLists: true });
    expect(await ok(fake, "getVolumeList", {})).toEqual({});
  });

  test("ignoreConfigurationName: unknown configuration accepted (3.x)", async () => {
    const fake = await fakeWith({ ignoreConfigurationName: true });
    await ok(fake, "createVolume", { name: "v", tenant_id: fake.tenants[0]!.id, configuration_name: "WHATEVER" });
  });
});

describe("authorisation", () => {
  const tA = { id: crypto.randomUUID(), name: "A" };
  const tB = { id: crypto.randomUUID(), name: "B" };
  let fake: FakeQuobyte;
  const adminA = { user: "adminA", password: "pa" };
  const memberA = { user: "memberA", password: "pm" };
  beforeAll(async () => {
    fake = await fakeWith({
      tenants: [tA, tB],
      users: [
        { name: "root", password: "r" },
        { name: "adminA", password: "pa", role: "TENANT_ADMIN", tenants: [tA.id] },
        { name: "memberA", password: "pm", role: "MEMBER", tenants: ["A"] },
      ],
    });
  });
  afterEach(() => fake.reset());

  test("tenant admin writes in its tenant only", async () => {
    await ok(fake, "createVolume", { name: "v", tenant_id: tA.id }, { auth: adminA });
    const e = await err(fake, "createVolume", { name: "v", tenant_id: tB.id }, { auth: adminA });
    expect(e.message).toStartWith("PERMISSION_DENIED/POSIX_ERROR_NONE: ");
    const vb = fake.addVolume({ name: "vb", tenantId: tB.id });
    expect((await err(fake, "deleteVolume", { volume_uuid: vb.uuid }, { auth: adminA })).message).toStartWith("PERMISSION_DENIED");
    expect(fake.volumes()).toHaveLength(2);
  });

  test("member reads its tenant, cannot write; reads are filtered", async () => {
    fake.addVolume({ name: "va", tenantId: tA.id });
    fake.addVolume({ name: "vb", tenantId: tB.id });
    expect((await err(fake, "createVolume", { name: "v", tenant_id: tA.id }, { auth: memberA })).message).toStartWith(
      "PERMISSION_DENIED",
    );
    const list = await ok(fake, "getVolumeList", {}, { auth: memberA });
    expect((list["volume"] as { name: string }[]).map((v) => v.name)).toEqual(["va"]);
    expect((await err(fake, "getVolumeList", { tenant_domain: tB.id }, { auth: memberA })).message).toStartWith("PERMISSION_DENIED");
    expect((await err(fake, "resolveVolumeName", { volume_name: "vb" }, { auth: memberA })).code).toBe(2);
    const who = await ok(fake, "whoAmI", {}, { auth: memberA });
    expect(who).toMatchObject({ user_name: "memberA", management_role: "MEMBER", member_of_tenant: [tA.id], admin_of_tenant: [] });
    const tenants = await ok(fake, "getTenant", {}, { auth: memberA });
    expect((tenants["tenant"] as { name: string }[]).map((t) => t.name)).toEqual(["A"]);
  });

  test("a user without role is a super user", async () => {
    await ok(fake, "createVolume", { name: "v", tenant_id: tB.id }, { auth: { user: "root", password: "r" } });
  });
});

describe("mount tree", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await makeTempDir("fake-quobyte-tree-");
  });
  afterAll(async () => {
    await removeTempDir(dir);
  });

  test("directory appears after the delay and disappears (recursively) on delete", async () => {
    const tree = join(dir, "delayed");
    mkdirSync(tree);
    const fake = await fakeWith({ mountTree: tree, mountDelayMs: 150 });
    const uuid = (await ok(fake, "createVolume", { name: "vol", tenant_id: fake.tenants[0]!.id }))["volume_uuid"] as string;
    const path = join(tree, "vol");
    expect(fake.mountPathOf({ name: "vol", uuid })).toBe(path);
    expect(existsSync(path)).toBe(false);
    await Bun.sleep(60);
    expect(existsSync(path)).toBe(false);
    expect(await waitFor(() => existsSync(path), 2000)).toBe(true);
    mkdirSync(join(path, "sub"));
    writeFileSync(join(path, "sub", "f"), "data");
    await ok(fake, "deleteVolume", { volume_uuid: uuid });
    expect(existsSync(path)).toBe(false);
  });

  test("delay 0: present when createVolume answers; erase and reset remove it; addVolume materialises", async () => {
    const tree = join(dir, "now");
    mkdirSync(tree);
    const fake = await fakeWith({ mountTree: tree });
    const tenant = fake.tenants[0]!.id;
    const uuid = (await ok(fake, "createVolume", { name: "vol", tenant_id: tenant }))["volume_uuid"] as string;
    expect(lstatSync(join(tree, "vol")).isDirectory()).toBe(true);
    await ok(fake, "eraseVolume", { volume_uuid: uuid, force: true });
    expect(existsSync(join(tree, "vol"))).toBe(false);
    const seeded = fake.addVolume({ name: "seeded", tenantId: tenant });
    expect(existsSync(join(tree, "seeded"))).toBe(true);
    fake.reset();
    expect(existsSync(join(tree, "seeded"))).toBe(false);
    expect(seeded.uuid).toBeDefined();
  });

  test("delete before the delay: the directory never appears", async () => {
    const tree = join(dir, "cancel");
    mkdirSync(tree);
    const fake = await fakeWith({ mountTree: tree, mountDelayMs: 100 });
    const uuid = (await ok(fake, "createVolume", { name: "vol", tenant_id: fake.tenants[0]!.id }))["volume_uuid"] as string;
    await ok(fake, "deleteVolume", { volume_uuid: uuid });
    await Bun.sleep(200);
    expect(existsSync(join(tree, "vol"))).toBe(false);
  });

  test("layout both: <name> directory plus <uuid> symlink; layout uuid: <uuid> directory", async () => {
    const both = join(dir, "both");
    mkdirSync(both);
    const f1 = await fakeWith({ mountTree: both, mountTreeLayout: "both" });
    const u1 = (await ok(f1, "createVolume", { name: "vol", tenant_id: f1.tenants[0]!.id }))["volume_uuid"] as string;
    expect(lstatSync(join(both, "vol")).isDirectory()).toBe(true);
    expect(readlinkSync(join(both, u1))).toBe("vol");
    await ok(f1, "deleteVolume", { volume_uuid: u1 });
    expect(existsSync(join(both, "vol")) || existsSync(join(both, u1))).toBe(false);

    const byUuid = join(dir, "uuid");
    mkdirSync(byUuid);
    const f2 = await fakeWith({ mountTree: byUuid, mountTreeLayout: "uuid" });
    const u2 = (await ok(f2, "createVolume", { name: "vol", tenant_id: f2.tenants[0]!.id }))["volume_uuid"] as string;
    expect(f2.mountPathOf({ name: "vol", uuid: u2 })).toBe(join(byUuid, u2));
    expect(lstatSync(join(byUuid, u2)).isDirectory()).toBe(true);
    expect(existsSync(join(byUuid, "vol"))).toBe(false);
  });
});

describe("faults", () => {
  let fake: FakeQuobyte;
  let tenant: string;
  beforeAll(async () => {
    fake = await fakeWith();
    tenant = fake.tenants[0]!.id;
  });
  afterEach(() => fake.reset());

  test("hang: the client's AbortSignal.timeout fires; nothing is executed", async () => {
    fake.injectFault("createVolume", { kind: "hang" });
    const started = Date.now();
    const e = await call(fake, "createVolume", { name: "v", tenant_id: tenant }, { signal: AbortSignal.timeout(300) }).catch(
      (x: unknown) => x,
    );
    expect((e as Error).name).toBe("TimeoutError");
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(fake.volumes()).toEqual([]);
    expect(fake.log[0]).toMatchObject({ method: "createVolume", fault: "hang", status: 0, response: "" });
    // the fault was consumed: the next request is answered
    await ok(fake, "createVolume", { name: "v", tenant_id: tenant });
  });

  test("hang: stop() closes the hung connection (client sees a connection error)", async () => {
    const f = await startFakeQuobyte();
    f.injectFault("*", { kind: "hang" });
    const pending = call(f, "getInformation").then(
      () => "answered",
      (e: unknown) => `rejected: ${String(e)}`,
    );
    await waitFor(() => f.log.length === 1, 2000);
    const t = Date.now();
    await f.stop();
    expect(Date.now() - t).toBeLessThan(2000);
    expect(await pending).toStartWith("rejected:");
  });

  test("drop: fetch rejects with a connection error", async () => {
    fake.injectFault("createVolume", { kind: "drop" });
    const e = await call(fake, "createVolume", { name: "v", tenant_id: tenant }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(Error);
    expect((e as { code?: string }).code).toBe("ECONNRESET");
    expect(fake.volumes()).toEqual([]);
    expect(fake.log[0]).toMatchObject({ fault: "drop", status: 0, response: "" });
    await ok(fake, "createVolume", { name: "v", tenant_id: tenant });
  });

  test("drop with afterApply: the call is executed, then the answer is lost", async () => {
    fake.injectFault("createVolume", { kind: "drop", afterApply: true });
    await expect(call(fake, "createVolume", { name: "v", tenant_id: tenant })).rejects.toThrow();
    expect(fake.volumes().map((v) => v.name)).toEqual(["v"]);
    expect((await err(fake, "createVolume", { name: "v", tenant_id: tenant })).message).toStartWith("ENTITY_EXISTS_ALREADY");
  });

  test("http-error: status with an HTML body", async () => {
    for (const status of [500, 502, 503]) {
      fake.injectFault("getInformation", { kind: "http-error", status });
      const r = await call(fake, "getInformation");
      expect(r.status).toBe(status);
      expect(r.headers.get("content-type")).toStartWith("text/html");
      expect(r.text).toStartWith("<html>");
      expect(r.json).toBeUndefined();
      expect(r.headers.get("set-cookie")).toBeNull();
    }
    expect(fake.activeCookies()).toBe(0); // no cookie was handed out
  });

  test("html-200: 200 with an HTML body", async () => {
    fake.injectFault("getInformation", { kind: "html-200" });
    const r = await call(fake, "getInformation");
    expect(r.status).toBe(200);
    expect(r.text).toStartWith("<html>");
  });

  test("unauthorized: 401 HTML despite correct credentials and cookie", async () => {
    const cookie = sessionCookie((await call(fake, "getInformation")).headers)!;
    fake.injectFault("*", { kind: "unauthorized" }, 2);
    const a = await call(fake, "getInformation", {}, { auth: null, cookie });
    const b = await call(fake, "getInformation");
    for (const r of [a, b]) {
      expect(r.status).toBe(401);
      expect(r.headers.get("www-authenticate")).toBe('Basic realm="Quobyte"');
      expect(r.text).toContain("<html>");
    }
    expect((await call(fake, "getInformation", {}, { auth: null, cookie })).status).toBe(200);
  });

  test("rpc-error: message verbatim, code given or derived", async () => {
    const msg = "RETRY_OTHER_IMMEDIATELY/POSIX_ERROR_NONE: database dirdb not found /";
    fake.injectFault("createVolume", { kind: "rpc-error", message: msg });
    fake.injectFault("createVolume", { kind: "rpc-error", code: 28, message: "text" });
    const a = await call(fake, "createVolume", { name: "v", tenant_id: tenant }, { id: "5" });
    expect(a.json).toEqual({ jsonrpc: "2.0", id: "5", error: { code: 6, message: msg } });
    expect(await err(fake, "createVolume", { name: "v", tenant_id: tenant })).toEqual({ code: 28, message: "text" });
    expect(fake.volumes()).toEqual([]);
    await ok(fake, "createVolume", { name: "v", tenant_id: tenant });
  });

  test("null-result: result null, the call is executed", async () => {
    fake.injectFault("createVolume", { kind: "null-result" });
    const r = await call(fake, "createVolume", { name: "v", tenant_id: tenant }, { id: "11" });
    expect(r.json).toEqual({ jsonrpc: "2.0", id: "11", result: null });
    expect(fake.volumes()).toHaveLength(1);
  });

  test("numeric-id: the response id is a JSON number", async () => {
    fake.injectFault("getInformation", { kind: "numeric-id" });
    const r = await call(fake, "getInformation", {}, { id: "77" });
    expect(r.text).toBe('{"jsonrpc":"2.0","id":77,"result":{}}');
  });

  test("slow: answered after the delay", async () => {
    fake.injectFault("getInformation", { kind: "slow", ms: 200 });
    const t = performance.now();
    await ok(fake, "getInformation");
    expect(performance.now() - t).toBeGreaterThanOrEqual(190);
    const t2 = performance.now();
    await ok(fake, "getInformation");
    expect(performance.now() - t2).toBeLessThan(150);
  });

  test("faults are consumed in order per matching method; '*' matches everything; times", async () => {
    fake.injectFault("resolveVolumeName", { kind: "http-error", status: 503 });
    fake.injectFault("*", { kind: "html-200" }, 2);
    fake.injectFault("getInformation", { kind: "http-error", status: 500 });
    expect(fake.pendingFaults()).toBe(4);
    expect((await call(fake, "getInformation")).status).toBe(200); // '*' #1 (html-200)
    expect((await call(fake, "resolveVolumeName", { volume_name: "x" })).status).toBe(503);
    expect((await call(fake, "whoAmI")).text).toStartWith("<html>"); // '*' #2
    expect((await call(fake, "getInformation")).status).toBe(500);
    expect(fake.pendingFaults()).toBe(0);
    expect((await call(fake, "getInformation")).json?.["result"]).toEqual({});
    fake.injectFault("*", { kind: "http-error", status: 502 }, Infinity);
    expect((await call(fake, "getInformation")).status).toBe(502);
    expect((await call(fake, "whoAmI")).status).toBe(502);
    fake.clearFaults();
    expect((await call(fake, "whoAmI")).status).toBe(200);
    expect(fake.log.map((l) => l.fault)).toEqual(["html-200", "http-error", "html-200", "http-error", undefined, "http-error", "http-error", undefined]);
  });

  test("faults are not consumed by unauthenticated requests", async () => {
    fake.injectFault("*", { kind: "http-error", status: 500 });
    expect((await call(fake, "getInformation", {}, { auth: null })).status).toBe(401);
    expect(fake.pendingFaults()).toBe(1);
  });
});

describe("tls", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await makeTempDir("fake-quobyte-tls-");
  });
  afterAll(async () => {
    await removeTempDir(dir);
  });

  test("https with a self-signed certificate; fetch trusts it via tls.ca; drop works too", async () => {
    const keyPath = join(dir, "key.pem");
    const certPath = join(dir, "cert.pem");
    const proc = Bun.spawn(
      [
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-addext", "subjectAltName=IP:127.0.0.1", "-days", "1", "-keyout", keyPath, "-out", certPath,
      ],
      { stdout: "ignore", stderr: "pipe" },
    );
    expect(await proc.exited).toBe(0);
    const cert = await Bun.file(certPath).text();
    const key = await Bun.file(keyPath).text();
    const fake = await fakeWith({ tls: { cert, key } });
    expect(fake.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/$/);
    const r = await call(fake, "getInformation", {}, { tls: { ca: cert } });
    expect(r.json).toEqual({ jsonrpc: "2.0", id: "1", result: {} });
    // without the CA the certificate is rejected
    await expect(call(fake, "getInformation")).rejects.toThrow();
    fake.injectFault("*", { kind: "drop" });
    await expect(call(fake, "getInformation", {}, { tls: { ca: cert } })).rejects.toThrow();
  });
});

