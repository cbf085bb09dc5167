/**
 * HTTP layer of the fake Quobyte API (reference §5.2, §5.5, §5.6): Bun.serve on
 * 127.0.0.1:0, Basic auth + session cookies, JSON-RPC envelope, fault injection,
 * request log.
 */
import type { Server } from "bun";
import { RpcError, errorCodeFor, invalidRequest, isPlainObject, type Params } from "./errors.ts";
import { FakeState, type Principal } from "./state.ts";
import type { FakeFault, FakeQuobyte, FakeQuobyteOptions, FakeRequestLog, FakeTenant, FakeVolume } from "./types.ts";

export const COOKIE_NAME = "qb_session";

interface QueuedFault {
  method: string;
  fault: FakeFault;
  remaining: number;
}

function html(status: number, title: string, headers: Record<string, string> = {}): Response {
  const body = `<html><head><title>${status} ${title}</title></head><body><h1>${status} ${title}</h1></body></html>\n`;
  return new Response(body, { status, headers: { "Content-Type": "text/html; charset=utf-8", ...headers } });
}

const STATUS_TEXT: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

/**
 * A response whose body stream errors before the first byte: Bun then resets the
 * connection without sending a status line, so clients see ECONNRESET.
 */
const DROPPED = new WeakSet<Response>();

function droppedResponse(): Response {
  const res = new Response(
    new ReadableStream({
      start(controller) {
        controller.error();
      },
    }),
  );
  DROPPED.add(res);
  return res;
}

function parseCookie(header: string | null): string | undefined {
  if (header === null) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === COOKIE_NAME) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function parseBasic(header: string | null): { user: string; password: string } | "invalid" | undefined {
  if (header === null) return undefined;
  const m = /^\s*basic\s+(\S*)\s*$/i.exec(header);
  if (m === null) return "invalid";
  let decoded: string;
  try {
    decoded = Buffer.from(m[1] ?? "", "base64").toString("utf8");
  } catch {
    return "invalid";
  }
  const colon = decoded.indexOf(":");
  if (colon < 0) return "invalid";
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

class FakeQuobyteServer implements FakeQuobyte {
  readonly log: FakeRequestLog[] = [];
  private readonly state: FakeState;
  private readonly faults: QueuedFault[] = [];
  private readonly sessions = new Map<string, Principal>();
  private readonly hung = new Set<(r: Response) => void>();
  private readonly cookiesOn: boolean;
  private server!: Server<undefined>;
  private stopped = false;

  constructor(private readonly opts: FakeQuobyteOptions) {
    this.state = new FakeState(opts);
    this.cookiesOn = opts.cookies ?? true;
  }

  start(): void {
    this.server = Bun.serve({
      hostname: "127.0.0.1",
      port: this.opts.port ?? 0,
      idleTimeout: 0, // "hang" must hold the connection until stop()
      development: false,
      ...(this.opts.tls !== undefined ? { tls: { cert: this.opts.tls.cert, key: this.opts.tls.key } } : {}),
      fetch: (req) => this.handle(req),
      error: (err) => html(500, `Internal Server Error: ${String(err)}`),
    });
  }

  get port(): number {
    return this.server.port ?? 0;
  }

  get url(): string {
    return `${this.opts.tls !== undefined ? "https" : "http"}://127.0.0.1:${this.port}/`;
  }

  get tenants(): FakeTenant[] {
    return this.state.tenants.map((t) => ({ ...t }));
  }

  volumes(): FakeVolume[] {
    return [...this.state.volumes.values()].map((v) => this.state.snapshot(v));
  }

  quotas(): ReturnType<FakeQuobyte["quotas"]> {
    return this.state.quotas.map((q) => ({
      id: q.id,
      consumer: q.consumer.map((c) => ({ ...c })),
      limits: q.limits.map((l) => ({ ...l })),
    }));
  }

  injectFault(method: string, fault: FakeFault, times = 1): void {
    if (times > 0) this.faults.push({ method, fault, remaining: times });
  }

  clearFaults(): void {
    this.faults.length = 0;
  }

  pendingFaults(): number {
    return this.faults.reduce((n, f) => n + f.remaining, 0);
  }

  invalidateCookies(): void {
    this.sessions.clear();
  }

  activeCookies(): number {
    return this.sessions.size;
  }

  addVolume(v: Partial<FakeVolume> & { name: string; tenantId: string }): FakeVolume {
    return this.state.seedVolume(v);
  }

  updateVolume(uuid: string, patch: Partial<Pick<FakeVolume, "usedBytes" | "rootUserId" | "rootGroupId">>): FakeVolume {
    const v = this.state.volumes.get(uuid);
    if (v === undefined) throw new Error(`fake-quobyte: no volume ${uuid}`);
    Object.assign(v, patch);
    return this.state.snapshot(v);
  }

  addTenant(t: { name: string; id?: string }): FakeTenant {
    return this.state.seedTenant(t);
  }

  mountPathOf(volume: Pick<FakeVolume, "name" | "uuid">): string | undefined {
    return this.state.mountTree?.pathOf(volume);
  }

  reset(): void {
    this.state.reset();
    this.log.length = 0;
    this.faults.length = 0;
    this.sessions.clear();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.state.stopTimers();
    await this.server.stop(true);
    for (const release of this.hung) release(new Response(null, { status: 503 }));
    this.hung.clear();
  }

  // ---- request handling -----------------------------------------------------------

  private takeFault(method: string | undefined): FakeFault | undefined {
    const i = this.faults.findIndex((f) => f.method === "*" || f.method === method);
    const q = this.faults[i];
    if (q === undefined) return undefined;
    q.remaining -= 1;
    if (q.remaining <= 0) this.faults.splice(i, 1);
    return q.fault;
  }

  private async handle(req: Request): Promise<Response> {
    const entry: FakeRequestLog = {
      time: Date.now(),
      path: new URL(req.url).pathname,
      httpMethod: req.method,
      auth: "none",
      sentBasic: req.headers.has("authorization"),
      sentCookie: false,
      authOk: false,
      setCookie: false,
      rawBody: "",
      status: 0,
      response: "",
    };
    // Records the answer; dropped and hung requests keep status 0 and response "".
    const finish = async (res: Response | Promise<Response>): Promise<Response> => {
      if (res instanceof Promise) return res; // hang: never answered before stop()
      if (DROPPED.has(res)) {
        entry.endTime = Date.now();
        return res;
      }
      entry.status = res.status;
      entry.response = await res.clone().text();
      entry.endTime = Date.now();
      return res;
    };
    entry.rawBody = await req.text();
    entry.time = Date.now();
    this.log.push(entry);
    if (req.method !== "POST") return finish(html(405, "Method Not Allowed", { Allow: "POST" }));

    // Authentication: valid cookie, else Basic, else 401.
    let who: Principal | undefined;
    let newCookie: string | undefined;
    const sentCookie = parseCookie(req.headers.get("cookie"));
    entry.sentCookie = sentCookie !== undefined;
    const cookie = this.cookiesOn ? sentCookie : undefined;
    if (cookie !== undefined) {
      entry.auth = "cookie";
      who = this.sessions.get(cookie);
    }
    if (who === undefined) {
      const basic = parseBasic(req.headers.get("authorization"));
      if (basic !== undefined) {
        entry.auth = "basic";
        if (basic !== "invalid") {
          entry.user = basic.user;
          who = this.state.login(basic.user, basic.password);
          if (who !== undefined && this.cookiesOn) {
            newCookie = crypto.randomUUID().replaceAll("-", "");
          }
        }
      }
    }
    if (who === undefined) return finish(html(401, "Unauthorized", { "WWW-Authenticate": 'Basic realm="Quobyte"' }));
    entry.authOk = true;
    entry.user = who.name;
    // Headers of a JSON answer; a new session cookie becomes valid only once it is sent.
    const principal = who;
    const jsonHeaders = (): Record<string, string> => {
      const h: Record<string, string> = { "Content-Type": "application/json" };
      if (newCookie !== undefined) {
        this.sessions.set(newCookie, principal);
        h["Set-Cookie"] = `${COOKIE_NAME}=${newCookie}; Path=/; HttpOnly`;
        entry.setCookie = true;
      }
      return h;
    };
    const json = (body: unknown): Promise<Response> =>
      finish(new Response(JSON.stringify(body), { status: 200, headers: jsonHeaders() }));

    // Envelope.
    let id: string | null = null;
    let method: string | undefined;
    let params: Params = {};
    let envelopeError: RpcError | undefined;
    let parsed: unknown;
    try {
      parsed = JSON.parse(entry.rawBody);
    } catch {
      envelopeError = new RpcError(-32700, "");
    }
    if (envelopeError !== undefined) {
      // parse error: id stays null
    } else if (!isPlainObject(parsed)) {
      envelopeError = invalidRequest();
    } else {
      const rawId = parsed["id"];
      entry.id = rawId;
      if (typeof rawId === "string") id = rawId;
      else if (typeof rawId === "number") id = String(rawId);
      else if (rawId !== undefined && rawId !== null) envelopeError = invalidRequest();
      const m = parsed["method"];
      if (typeof m === "string") {
        method = m;
        entry.method = m;
      } else envelopeError = invalidRequest();
      const p = parsed["params"];
      if (isPlainObject(p)) params = p;
      else if (p !== undefined && p !== null) envelopeError = invalidRequest();
      entry.params = params;
      entry.retry = params["retry"];
    }

    const fault = this.takeFault(method);
    if (fault !== undefined) entry.fault = fault.kind;
    if (fault !== undefined && !("afterApply" in fault && fault.afterApply === true)) {
      const early = this.transportFault(fault, id, jsonHeaders);
      if (early !== undefined) return finish(early);
    }
    if (fault?.kind === "slow") await Bun.sleep(fault.ms);

    // Execute (synchronously: atomic per request).
    let body: Record<string, unknown>;
    try {
      if (envelopeError !== undefined) throw envelopeError;
      if (method === undefined) throw invalidRequest();
      const result = this.state.call(method, params, who);
      body = { jsonrpc: "2.0", id, result };
    } catch (e) {
      if (!(e instanceof RpcError)) return finish(html(500, `Internal Server Error (fake-quobyte bug: ${String(e)})`));
      body = { jsonrpc: "2.0", id, error: { code: e.code, message: e.message } };
    }

    if (fault !== undefined && "afterApply" in fault && fault.afterApply === true) {
      const late = this.transportFault(fault, id, jsonHeaders);
      if (late !== undefined) return finish(late);
    }
    if (fault?.kind === "null-result") body = { jsonrpc: "2.0", id, result: null };
    if (fault?.kind === "numeric-id") {
      const n = id !== null && /^-?[0-9]+$/.test(id) ? Number(id) : 1;
      body = { ...body, id: Number.isSafeInteger(n) ? n : 1 };
    }
    return json(body);
  }

  /**
   * Faults answered instead of (or, with afterApply, after) executing the call.
   * Returns undefined for faults handled elsewhere (null-result, numeric-id, slow).
   */
  private transportFault(
    fault: FakeFault,
    id: string | null,
    jsonHeaders: () => Record<string, string>,
  ): Response | Promise<Response> | undefined {
    switch (fault.kind) {
      case "hang":
        if (this.stopped) return droppedResponse();
        return new Promise<Response>((resolve) => this.hung.add(resolve));
      case "drop":
        return droppedResponse();
      case "http-error":
        return html(fault.status, STATUS_TEXT[fault.status] ?? "Error");
      case "html-200":
        return html(200, "OK");
      case "unauthorized":
        return html(401, "Unauthorized", { "WWW-Authenticate": 'Basic realm="Quobyte"' });
      case "rpc-error": {
        const code = fault.code ?? errorCodeFor(fault.message);
        const body = JSON.stringify({ jsonrpc: "2.0", id, error: { code, message: fault.message } });
        return new Response(body, { status: 200, headers: jsonHeaders() });
      }
      default:
        return undefined;
    }
  }
}

export async function startFakeQuobyte(options: FakeQuobyteOptions = {}): Promise<FakeQuobyte> {
  const fake = new FakeQuobyteServer(options);
  fake.start();
  return fake;
}
