import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { type AppHarness, engineRequest, makeAppHarness } from "./harness.ts";

let h: AppHarness;
beforeEach(async () => {
  h = await makeAppHarness();
});
afterEach(async () => {
  await h.cleanup();
});

async function post(path: string, body?: unknown, init: RequestInit = engineRequest(body)) {
  const res = await h.app.request(path, init);
  return { status: res.status, json: (await res.json()) as Record<string, any>, type: res.headers.get("content-type") };
}

describe("Plugin.Activate", () => {
  test("answers VolumeDriver only, to an empty body", async () => {
    const res = await post("/Plugin.Activate", undefined, { method: "POST", body: "" });
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ Implements: ["VolumeDriver"] });
  });
});

describe("VolumeDriver endpoints", () => {
  test("full lifecycle with engine-shaped requests", async () => {
    expect((await post("/VolumeDriver.Capabilities", {})).json).toEqual({ Capabilities: { Scope: "local" } });
    expect((await post("/VolumeDriver.List", {})).json).toEqual({ Volumes: [] });
    const created = await post("/VolumeDriver.Create", { Name: "v1", Opts: null });
    expect(created).toMatchObject({ status: 200, json: {} });
    expect(created.type).toContain("json");

    const got = await post("/VolumeDriver.Get", { Name: "v1" });
    expect(got.status).toBe(200);
    expect(got.json.Volume.Name).toBe("v1");
    expect(got.json.Volume.Mountpoint).toBe(`${h.root}/v1`);
    expect(new Date(got.json.Volume.CreatedAt).toISOString()).toBe(got.json.Volume.CreatedAt);
    expect(got.json.Volume.Status).toMatchObject({ backend: "posix", mounts: 0 });
    expect(got.json.Err).toBeUndefined();

    const mounted = await post("/VolumeDriver.Mount", { Name: "v1", ID: "a".repeat(64) });
    expect(mounted.json).toEqual({ Mountpoint: `${h.root}/v1` });
    expect((await post("/VolumeDriver.Path", { Name: "v1" })).json).toEqual({ Mountpoint: `${h.root}/v1` });
    expect((await post("/VolumeDriver.List", {})).json).toEqual({ Volumes: [{ Name: "v1", Mountpoint: `${h.root}/v1` }] });

    const busy = await post("/VolumeDriver.Remove", { Name: "v1" });
    expect(busy.status).toBe(500);
    expect(busy.json.Err).toContain("[VOLUME_IN_USE]");
    expect(existsSync(`${h.root}/v1`)).toBe(true);

    expect((await post("/VolumeDriver.Unmount", { Name: "v1", ID: "a".repeat(64) })).json).toEqual({});
    expect((await post("/VolumeDriver.Remove", { Name: "v1" })).json).toEqual({});
    expect(existsSync(`${h.root}/v1`)).toBe(false);
    expect((await post("/VolumeDriver.List", {})).json).toEqual({ Volumes: [] });
  });

  test("Create accepts Opts null, {} and absent, and options as strings", async () => {
    for (const [name, opts] of [["a", null], ["b", {}], ["c", undefined], ["d", { mode: "0750" }]] as const) {
      const body = opts === undefined ? { Name: name } : { Name: name, Opts: opts };
      expect((await post("/VolumeDriver.Create", body)).status).toBe(200);
    }
    expect((await post("/VolumeDriver.List", {})).json.Volumes.map((v: { Name: string }) => v.Name).sort()).toEqual([
      "a",
      "b",
      "c",
      "d",
    ]);
  });

  test("Get of an unknown name is an Err and creates nothing", async () => {
    const res = await post("/VolumeDriver.Get", { Name: "ghost" });
    expect(res.status).toBe(500);
    expect(res.json.Err).toContain("[VOLUME_NOT_FOUND]");
    expect(res.json.Volume).toBeUndefined();
    expect(existsSync(`${h.root}/ghost`)).toBe(false);
    expect((await post("/VolumeDriver.List", {})).json).toEqual({ Volumes: [] });
  });

  test("an unknown option is refused with the allowed options named", async () => {
    const res = await post("/VolumeDriver.Create", { Name: "v", Opts: { size: "1G" } });
    expect(res.status).toBe(500);
    expect(res.json.Err).toContain('"size"');
    expect(res.json.Err).toContain("user, group, mode");
    expect(res.json.Err).toContain("[INVALID_OPTION]");
    expect(existsSync(`${h.root}/v`)).toBe(false);
  });

  test("path tricks in names are refused before anything is touched", async () => {
    const before = readdirSync(h.root).sort();
    for (const name of ["../escape", "a/b", "..", ".", "", "x\u0000y", 42, null]) {
      const res = await post("/VolumeDriver.Create", { Name: name });
      expect(res.status).toBe(500);
      expect(res.json.Err).toContain("[INVALID_NAME]");
    }
    expect(readdirSync(h.root).sort()).toEqual(before);
    expect(existsSync(`${h.root}/../escape`)).toBe(false);
  });

  test("Path of a volume that is not mounted is an Err", async () => {
    await post("/VolumeDriver.Create", { Name: "v" });
    const res = await post("/VolumeDriver.Path", { Name: "v" });
    expect(res.json.Err).toContain("[NOT_MOUNTED]");
  });
});

describe("malformed requests get an Err and cause no action", () => {
  const cases: [string, string, string][] = [
    ["an empty body (means {})", "", "Name is required"],
    ["whitespace (means {})", "\n", "Name is required"],
    ["invalid JSON", '{"Name":', "not valid JSON"],
    ["a JSON array", '["v"]', "must be a JSON object"],
    ["JSON null", "null", "must be a JSON object"],
    ["a JSON string", '"v"', "must be a JSON object"],
    ["no Name", '{"Opts":{}}\n', "Name is required"],
  ];
  for (const [what, body, message] of cases) {
    test(`Create with ${what}`, async () => {
      const res = await post("/VolumeDriver.Create", undefined, { method: "POST", body });
      expect(res.status).toBe(400);
      expect(res.json.Err).toContain("[INVALID_REQUEST]");
      expect(res.json.Err).toContain(message);
      expect(readdirSync(h.root)).toEqual([".docker-quobyte-plugin"]);
    });
  }

  for (const endpoint of ["Remove", "Mount", "Unmount", "Path", "Get"]) {
    test(`${endpoint} with an empty body is refused for its missing Name`, async () => {
      const res = await post(`/VolumeDriver.${endpoint}`, undefined, { method: "POST", body: "" });
      expect(res.status).toBe(400);
      expect(res.json.Err).toContain("Name is required; nothing was done");
    });
  }

  test("List and Capabilities answer an empty body as {} (curl, health checks)", async () => {
    await post("/VolumeDriver.Create", { Name: "v" });
    const list = await post("/VolumeDriver.List", undefined, { method: "POST", body: "" });
    expect(list.status).toBe(200);
    expect(list.json).toEqual({ Volumes: [{ Name: "v", Mountpoint: `${h.root}/v` }] });
    const caps = await post("/VolumeDriver.Capabilities", undefined, { method: "POST" });
    expect(caps.status).toBe(200);
    expect(caps.json).toEqual({ Capabilities: { Scope: "local" } });
  });

  test("Mount without ID names the missing field", async () => {
    await post("/VolumeDriver.Create", { Name: "v" });
    const res = await post("/VolumeDriver.Mount", { Name: "v" });
    expect(res.json.Err).toContain("ID is required; nothing was done");
  });

  test("Mount without ID is refused and records nothing", async () => {
    await post("/VolumeDriver.Create", { Name: "v" });
    const res = await post("/VolumeDriver.Mount", { Name: "v" });
    expect(res.status).toBe(400);
    expect(h.driver.mounts().size).toBe(0);
  });

  test("a body over 1 MiB is refused", async () => {
    const big = JSON.stringify({ Name: "v", Opts: { mode: "x".repeat(1024 * 1024) } });
    const res = await post("/VolumeDriver.Create", undefined, { method: "POST", body: big });
    expect(res.status).toBe(413);
    expect(res.json.Err).toContain("[REQUEST_TOO_LARGE]");
    expect(existsSync(`${h.root}/v`)).toBe(false);
  });

  test("unknown endpoints and GET answer 404 with an Err", async () => {
    const unknown = await post("/VolumeDriver.Frobnicate", {});
    expect(unknown.status).toBe(404);
    expect(unknown.json.Err).toContain("[UNKNOWN_ENDPOINT]");
    const get = await h.app.request("/VolumeDriver.List", { method: "GET" });
    expect(get.status).toBe(404);
    expect(((await get.json()) as { Err: string }).Err).toContain("UNKNOWN_ENDPOINT");
  });

  test("paths match exactly: a trailing slash, a prefix or another case is an unknown endpoint", async () => {
    for (const path of ["/Plugin.Activate/", "/VolumeDriver.List/", "/VolumeDriver.Lis", "/volumedriver.list", "//VolumeDriver.List", "/VolumeDriver.List/x"]) {
      const res = await post(path, {});
      expect({ path, status: res.status }).toEqual({ path, status: 404 });
      expect(res.json.Err).toContain("[UNKNOWN_ENDPOINT]");
    }
    const activate = await post("/Plugin.Activate");
    expect(activate.json).toEqual({ Implements: ["VolumeDriver"] });
  });
});

describe("logging", () => {
  test("one debug line per request; failures at warn with volume and code", async () => {
    await post("/VolumeDriver.Create", { Name: "v" });
    await post("/VolumeDriver.Get", { Name: "nope" });
    const lines = h.logs.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines.find((l) => l.level === "debug" && l.endpoint === "VolumeDriver.Create" && l.volume === "v")).toBeTruthy();
    const warn = lines.find((l) => l.level === "warn");
    expect(warn).toMatchObject({ endpoint: "VolumeDriver.Get", volume: "nope", code: "VOLUME_NOT_FOUND" });
  });
});
