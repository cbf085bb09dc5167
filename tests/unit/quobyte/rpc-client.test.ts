import { afterEach, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { isExists, isNotFound, QuobyteApi } from "../../../src/quobyte/api.ts";
import { RpcClient, type RpcClientOptions } from "../../../src/quobyte/rpc-client.ts";
import { errorTypeOf, QuobyteRpcError } from "../../../src/quobyte/rpc-error.ts";
import { DEFAULT_USER, type FakeQuobyte, type FakeQuobyteOptions, startFakeQuobyte } from "../../support/fake-quobyte.ts";
import { makeTempDir, removeTempDir } from "../../support/tmp.ts";

let fake: FakeQuobyte | undefined;
afterEach(async () => {
  await fake?.stop();
  fake = undefined;
});

async function setup(options: FakeQuobyteOptions = {}, client: Partial<RpcClientOptions> = {}) {
  fake = await startFakeQuobyte(options);
  const rpc = new RpcClient({ url: fake.url, user: DEFAULT_USER.name, password: DEFAULT_USER.password, timeoutMs: 1500, ...client });
  return { fake, rpc, api: new QuobyteApi(rpc) };
}

async function failure(promise: Promise<unknown>): Promise<QuobyteRpcError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(QuobyteRpcError);
    return error as QuobyteRpcError;
  }
  throw new Error("expected the call to fail");
}

describe("the JSON-RPC envelope", () => {
  test("POSTs JSON with string ids, object params and retry INTERACTIVE", async () => {
    const { fake, rpc } = await setup();
    await rpc.call("getInformation", {});
    await rpc.call("getTenant", { tenant_id: [] });
    const [first, second] = fake.log;
    expect(first?.id).toBe("1");
    expect(second?.id).toBe("2");
    expect(first?.params).toEqual({ retry: "INTERACTIVE" });
    expect(second?.retry).toBe("INTERACTIVE");
    expect(JSON.parse(first?.rawBody ?? "{}")).toMatchObject({ jsonrpc: "2.0", method: "getInformation" });
  });

  test("a null result is an error; a numeric response id is tolerated", async () => {
    const { fake, rpc } = await setup();
    fake.injectFault("getInformation", { kind: "null-result" });
    expect((await failure(rpc.call("getInformation", {}))).message).toContain("no result");
    fake.injectFault("getInformation", { kind: "numeric-id" });
    expect(await rpc.call("getInformation", {})).toEqual({});
  });

  test("error types are read with and without the POSIX suffix", async () => {
    expect(errorTypeOf("ENTITY_EXISTS_ALREADY/POSIX_ERROR_NONE: Volume name x is already used by volume y /")).toBe("ENTITY_EXISTS_ALREADY");
    expect(errorTypeOf("ENTITY_NOT_FOUND: Tenant 't' does not exist.")).toBe("ENTITY_NOT_FOUND");
    expect(errorTypeOf("something else")).toBeUndefined();
    for (const posixSuffix of [true, false]) {
      const { api, fake: server } = await setup({ posixSuffix });
      const tenant = server.tenants[0]?.id ?? "";
      await api.createVolume({ name: "v", tenantId: tenant, rootUserId: "root", rootGroupId: "root", configurationName: "BASE" });
      const exists = await failure(api.createVolume({ name: "v", tenantId: tenant, rootUserId: "root", rootGroupId: "root", configurationName: "BASE" }));
      expect(isExists(exists)).toBe(true);
      expect(isNotFound(await failure(api.createVolume({ name: "w", tenantId: "9c3b8d6e-1111-4222-8333-444455556666", rootUserId: "root", rootGroupId: "root", configurationName: "BASE" })))).toBe(true);
      await server.stop();
      fake = undefined;
    }
  });
});

describe("authentication", () => {
  test("Basic first, then the session cookie alone", async () => {
    const { fake, rpc } = await setup();
    await rpc.call("getInformation", {});
    await rpc.call("getInformation", {});
    expect(fake.log.map((entry) => [entry.sentBasic, entry.sentCookie])).toEqual([
      [true, false],
      [false, true],
    ]);
  });

  test("a 401 to a cookie-only request drops the cookie and retries once with Basic", async () => {
    const { fake, rpc } = await setup();
    await rpc.call("getInformation", {});
    fake.invalidateCookies();
    expect(await rpc.call("getInformation", {})).toEqual({});
    expect(fake.log.slice(1).map((entry) => [entry.sentBasic, entry.sentCookie, entry.status])).toEqual([
      [false, true, 401],
      [true, false, 200],
    ]);
  });

  test("a 401 with Basic is a clear authentication failure that names the user, not the password", async () => {
    const { rpc } = await setup({}, { password: "wrong-password-xyz" });
    const error = await failure(rpc.call("getInformation", {}));
    expect(error.failure).toBe("auth");
    expect(error.message).toContain("authentication failed");
    expect(error.message).toContain(DEFAULT_USER.name);
    expect(error.message).not.toContain("wrong-password-xyz");
    expect(error.message).not.toContain("<");
  });

  test("the fake's 401-with-right-credentials fault is reported as an authentication failure", async () => {
    const { fake, rpc } = await setup();
    fake.injectFault("getInformation", { kind: "unauthorized" });
    expect((await failure(rpc.call("getInformation", {}))).failure).toBe("auth");
  });
});

describe("HTTP and transport failures", () => {
  test("HTML error pages give the HTTP status, not a parse trace", async () => {
    const { fake, rpc } = await setup();
    fake.injectFault("getInformation", { kind: "http-error", status: 503 });
    const error = await failure(rpc.call("getInformation", {}));
    expect(error.failure).toBe("http");
    expect(error.message).toContain("HTTP 503");
    expect(error.message).not.toMatch(/JSON Parse|SyntaxError|Unexpected token/);
    fake.injectFault("getInformation", { kind: "html-200" });
    expect((await failure(rpc.call("getInformation", {}))).message).toContain("HTTP 200");
  });

  test("a hung API fails at the deadline", async () => {
    const { fake, rpc } = await setup({}, { timeoutMs: 300 });
    fake.injectFault("getInformation", { kind: "hang" });
    const started = Date.now();
    const error = await failure(rpc.call("getInformation", {}, { idempotent: true }));
    expect(error.failure).toBe("timeout");
    expect(Date.now() - started).toBeLessThan(1500);
  });

  test("a dropped connection is retried for idempotent calls only", async () => {
    const { fake, rpc, api } = await setup();
    fake.injectFault("getTenant", { kind: "drop" });
    expect(await rpc.call("getTenant", { tenant_id: [] }, { idempotent: true })).toHaveProperty("tenant");
    expect(fake.log.filter((entry) => entry.method === "getTenant")).toHaveLength(2);

    const tenant = fake.tenants[0]?.id ?? "";
    fake.injectFault("createVolume", { kind: "drop" });
    const error = await failure(api.createVolume({ name: "v", tenantId: tenant, rootUserId: "root", rootGroupId: "root", configurationName: "BASE" }));
    expect(error.failure).toBe("transport");
    expect(fake.log.filter((entry) => entry.method === "createVolume")).toHaveLength(1);
  });

  test("retries are bounded", async () => {
    const { fake, rpc } = await setup({}, { attempts: 3, timeoutMs: 5000 });
    fake.injectFault("getTenant", { kind: "drop" }, Number.POSITIVE_INFINITY);
    expect((await failure(rpc.call("getTenant", {}, { idempotent: true }))).failure).toBe("transport");
    expect(fake.log.filter((entry) => entry.method === "getTenant")).toHaveLength(3);
  });

  test("connection refused is a transport error naming the URL without credentials", async () => {
    const rpc = new RpcClient({ url: "http://user:pw-in-url@127.0.0.1:1/", user: "u", password: "p", timeoutMs: 1000, attempts: 1 });
    const error = await failure(rpc.call("getInformation", {}));
    expect(error.failure).toBe("transport");
    expect(error.message).toContain("127.0.0.1:1");
    expect(error.message).not.toContain("pw-in-url");
  });
});

describe("https", () => {
  test("verifies the API's certificate against --api-ca", async () => {
    const dir = await makeTempDir("dqp-tls-");
    try {
      const proc = Bun.spawn(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-days", "1", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")],
        { stdout: "ignore", stderr: "ignore" },
      );
      expect(await proc.exited).toBe(0);
      const cert = await Bun.file(join(dir, "cert.pem")).text();
      const key = await Bun.file(join(dir, "key.pem")).text();
      const { rpc } = await setup({ tls: { cert, key } }, { ca: cert });
      expect(await rpc.call("getInformation", {})).toEqual({});
      const untrusted = new RpcClient({ url: fake?.url ?? "", user: DEFAULT_USER.name, password: DEFAULT_USER.password, timeoutMs: 1500, attempts: 1 });
      expect((await failure(untrusted.call("getInformation", {}))).failure).toBe("transport");
    } finally {
      await removeTempDir(dir);
    }
  });
});

describe("QuobyteApi", () => {
  test("finds tenants by name and by UUID, and says when they do not exist", async () => {
    const { api, fake } = await setup();
    const tenant = fake.tenants[0];
    expect(await api.findTenant("My Tenant")).toEqual({ id: tenant?.id ?? "", name: "My Tenant" });
    expect(await api.findTenant(tenant?.id ?? "")).toEqual({ id: tenant?.id ?? "", name: "My Tenant" });
    expect(await api.findTenant("No Such Tenant")).toBeUndefined();
    expect(await api.findTenant("9c3b8d6e-1111-4222-8333-444455556666")).toBeUndefined();
  });

  test("delete and erase of a volume that is gone succeed", async () => {
    const { api } = await setup();
    await api.deleteVolume("9c3b8d6e-1111-4222-8333-444455556666");
    await api.eraseVolume("9c3b8d6e-1111-4222-8333-444455556666");
  });
});
