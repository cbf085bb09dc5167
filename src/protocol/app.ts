// Hono's base class with a router for fixed paths: the default router builds a regular
// expression on the first request, and its modules take part in every start.
import { HonoBase as Hono } from "hono/hono-base";
import { ExactRouter } from "./exact-router.ts";
import type { Driver } from "../core/driver.ts";
import type { VolumeSummary } from "../core/types.ts";
import { PluginError } from "../core/errors.ts";
import { LogLevels, type Logger } from "../logging.ts";
import { parseObject, readBody } from "./body.ts";
import { backendDependencies, type HealthReport, HealthTracker } from "../core/health.ts";
import { errorReply } from "./error-reply.ts";
import { Metrics } from "./metrics.ts";
import { runtimeStats } from "./runtime-stats.ts";
import { ACTIVATE_REPLY, CONTENT_TYPE, mountIdOf, nameOf, toWireSummary, toWireVolume } from "./schema.ts";

type Body = Record<string, unknown>;

/** A reply body already encoded as JSON text. */
class EncodedJson {
  constructor(readonly text: string) {}
}

/**
 * List replies by the driver's array: a backend hands out the same array while its
 * volumes are unchanged, and 10,000 volumes take milliseconds to encode.
 */
const encodedLists = new WeakMap<readonly VolumeSummary[], EncodedJson>();

function encodeList(volumes: readonly VolumeSummary[]): EncodedJson {
  let encoded = encodedLists.get(volumes);
  if (!encoded) {
    encoded = new EncodedJson(JSON.stringify({ Volumes: volumes.map(toWireSummary) }));
    encodedLists.set(volumes, encoded);
  }
  return encoded;
}

type Endpoint = (driver: Driver, body: Body) => Promise<unknown>;

/** The eight VolumeDriver methods: decode the body, call the driver, encode the reply. */
const ENDPOINTS: Record<string, Endpoint> = {
  "VolumeDriver.Create": async (driver, body) => {
    await driver.create(nameOf(body), body.Opts);
    return {};
  },
  "VolumeDriver.Remove": async (driver, body) => {
    await driver.remove(nameOf(body));
    return {};
  },
  "VolumeDriver.Mount": async (driver, body) => ({ Mountpoint: await driver.mount(nameOf(body), mountIdOf(body)) }),
  "VolumeDriver.Unmount": async (driver, body) => {
    await driver.unmount(nameOf(body), mountIdOf(body));
    return {};
  },
  "VolumeDriver.Path": async (driver, body) => ({ Mountpoint: await driver.path(nameOf(body)) }),
  "VolumeDriver.Get": async (driver, body) => ({ Volume: toWireVolume(await driver.get(nameOf(body))) }),
  "VolumeDriver.List": async (driver) => encodeList(await driver.list()),
  "VolumeDriver.Capabilities": async (driver) => ({ Capabilities: { Scope: driver.capabilities().scope } }),
};

/**
 * Docker 20.10 sends an empty Host header over the Unix socket, which leaves Bun with a
 * request URL of just the path; newer engines send `plugin.moby.localhost`. Route on the
 * path alone, never on the host.
 */
function pathOf(request: Request): string {
  const url = request.url;
  const start = url.startsWith("/") ? 0 : url.indexOf("/", url.indexOf("//") + 2);
  if (start < 0) return "/";
  const query = url.indexOf("?", start);
  return query < 0 ? url.slice(start) : url.slice(start, query);
}

const HEADERS = { "Content-Type": CONTENT_TYPE };
const OK = { status: 200, headers: HEADERS };

function reply(payload: unknown, status = 200): Response {
  const text = payload instanceof EncodedJson ? payload.text : JSON.stringify(payload);
  return new Response(text, status === 200 ? OK : { status, headers: HEADERS });
}

/** The request's volume name for logs; a hostile request may send megabytes of name. */
function nameForLog(body: Body | undefined): string | undefined {
  return typeof body?.Name === "string" ? body.Name.slice(0, 256) : undefined;
}

/** Volume requests served so far (each request's log id); the caller may read it. */
export interface RequestActivity {
  requests: number;
}

/**
 * The protocol router: Plugin.Activate plus the VolumeDriver table over one driver.
 * `pending` says what a request must wait for while the backend is still loading (undefined
 * once it is ready); Activate never waits.
 */
export function createApp(
  driver: Driver,
  log: Logger,
  health = new HealthTracker(backendDependencies(driver.backend)),
  pending: () => Promise<void> | undefined = () => undefined,
  activity: RequestActivity = { requests: 0 },
): Hono {
  const app = new Hono({ getPath: pathOf, router: new ExactRouter() });
  const metrics = new Metrics();

  // Activate has an empty body and must always answer at once.
  app.post("/Plugin.Activate", () => {
    metrics.observe("Plugin.Activate", 0);
    return reply(ACTIVATE_REPLY);
  });

  for (const [method, call] of Object.entries(ENDPOINTS)) {
    app.post(`/${method}`, async (c) => {
      const started = performance.now();
      const id = ++activity.requests;
      let body: Body | undefined;
      try {
        const loading = pending();
        if (loading) await loading;
        body = parseObject(await readBody(c.req.raw));
        const payload = await call(driver, body);
        const ms = elapsed(started);
        metrics.observe(method, ms / 1000);
        // The record is only built when it is written: this is every request's path.
        if (log.level >= LogLevels.debug) log.debug("request", { id, endpoint: method, volume: nameForLog(body), ms, outcome: "ok" });
        return reply(payload);
      } catch (thrown) {
        const { status, body: errorBody, error } = errorReply(thrown);
        const fields = { id, endpoint: method, volume: error.volume ?? nameForLog(body), code: error.code, ms: elapsed(started), outcome: "error" };
        metrics.observe(method, fields.ms / 1000, error.code);
        if (error.code === "INTERNAL") log.error("request failed", { ...fields, error: String(thrown) });
        else log.warn(`request failed: ${error.message}`, fields);
        return reply(errorBody, status);
      }
    });
  }

  // Read-only operator endpoints on the same socket; the engine only ever POSTs.
  // Both answer within a bound from cached, single-flight probes: polling never piles up
  // on a frozen mount or a dead API.
  app.get("/health", async () => {
    await pending();
    const report = await health.report();
    return reply(healthBody(driver, report), report.status === "ok" ? 200 : 503);
  });
  app.get("/metrics", async () => {
    await pending();
    const [volumes, storage] = await Promise.all([driver.list().catch(() => []), driver.health()]);
    let activeMounts = 0;
    for (const count of driver.mounts().values()) activeMounts += count;
    const text = metrics.render({ volumes: volumes.length, activeMounts, storageLive: storage.state === "live" });
    return new Response(text, { headers: { "Content-Type": "text/plain; version=0.0.4" } });
  });
  app.get("/status", async () => {
    await pending();
    const [report, volumes] = await Promise.all([health.report(), driver.report()]);
    return reply({ ...healthBody(driver, report), volumes });
  });

  app.get("/debug/runtime", () => reply(runtimeStats()));

  app.notFound((c) => {
    const { status, body } = errorReply(
      new PluginError("UNKNOWN_ENDPOINT", `no such endpoint: ${c.req.method} ${pathOf(c.req.raw)}`),
    );
    return reply(body, status);
  });
  app.onError((thrown) => {
    log.error("unhandled error", { error: String(thrown) });
    const { status, body } = errorReply(thrown);
    return reply(body, status);
  });
  return app;
}

/** `storage` repeats the mount's state and detail for clients of the earlier format. */
function healthBody(driver: Driver, report: HealthReport): Record<string, unknown> {
  const mount = report.dependencies.mount;
  return {
    status: report.status,
    backend: driver.backend.kind,
    scope: driver.scope,
    storage: { state: mount?.state ?? "unknown", detail: mount?.detail ?? "" },
    dependencies: report.dependencies,
  };
}

function elapsed(started: number): number {
  return Math.round((performance.now() - started) * 1000) / 1000;
}
