import { messageOf } from "../core/errors.ts";
import { QuobyteRpcError, rpcErrorFromEnvelope } from "./rpc-error.ts";

export interface RpcClientOptions {
  /** The API endpoint, used as is (deployments may add a path prefix). */
  url: string;
  user: string;
  password: string;
  /** Deadline of one call, retries included (ms). */
  timeoutMs: number;
  /** PEM of the CA that signed the API's certificate (https only). */
  ca?: string;
  /** Attempts for idempotent calls that hit a connection failure. */
  attempts?: number;
}

export interface CallOptions {
  /** Safe to send again after a connection failure (reads, deletes by UUID, quotas). */
  idempotent?: boolean;
}

/**
 * JSON-RPC 2.0 over HTTP as the Quobyte API speaks it: string ids, params as an object,
 * HTTP Basic until the server sets a session cookie, then the cookie alone. A 401 to a
 * cookie-only request means the session ended: drop it and resend once with Basic.
 */
export class RpcClient {
  private cookie: string | undefined;
  private nextId = 1;
  private readonly authorization: string;
  private readonly attempts: number;

  constructor(private readonly options: RpcClientOptions) {
    this.authorization = `Basic ${Buffer.from(`${options.user}:${options.password}`).toString("base64")}`;
    this.attempts = Math.max(1, options.attempts ?? 3);
  }

  async call<T extends object>(method: string, params: Record<string, unknown>, call: CallOptions = {}): Promise<T> {
    const deadline = Date.now() + this.options.timeoutMs;
    const body = JSON.stringify({
      jsonrpc: "2.0",
      id: String(this.nextId++),
      method,
      // The server-side retry policy: fail fast instead of waiting for the cluster.
      params: { ...params, retry: "INTERACTIVE" },
    });
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.send<T>(method, body, deadline);
      } catch (error) {
        const retry =
          call.idempotent &&
          error instanceof QuobyteRpcError &&
          error.failure === "transport" &&
          attempt < this.attempts &&
          Date.now() + backoffMs(attempt) < deadline;
        if (!retry) throw error;
        await Bun.sleep(backoffMs(attempt));
      }
    }
  }

  private async send<T extends object>(method: string, body: string, deadline: number): Promise<T> {
    const usedCookie = this.cookie;
    let response = await this.post(method, body, deadline, usedCookie);
    if (response.status === 401 && usedCookie !== undefined) {
      if (this.cookie === usedCookie) this.cookie = undefined;
      await response.body?.cancel();
      response = await this.post(method, body, deadline, undefined);
    }
    if (response.status === 401) {
      await response.body?.cancel();
      throw new QuobyteRpcError("auth", method, `authentication failed for user ${JSON.stringify(this.options.user)} (HTTP 401); check the API user and password`, {
        status: 401,
      });
    }
    const setCookie = response.headers.get("set-cookie");
    if (setCookie) this.cookie = setCookie.split(";")[0]?.trim() || undefined;

    const text = await this.readText(method, response, deadline);
    let envelope: { result?: unknown; error?: { code?: unknown; message?: unknown } | null };
    try {
      envelope = JSON.parse(text) as typeof envelope;
    } catch {
      throw new QuobyteRpcError("http", method, `HTTP ${response.status} with a body that is not JSON (${snippet(text)}); is the URL the Quobyte API?`, {
        status: response.status,
      });
    }
    if (typeof envelope !== "object" || envelope === null) {
      throw new QuobyteRpcError("http", method, `HTTP ${response.status} with a body that is not a JSON-RPC answer`, { status: response.status });
    }
    if (envelope.error) throw rpcErrorFromEnvelope(method, envelope.error);
    if (response.status < 200 || response.status > 299) {
      throw new QuobyteRpcError("http", method, `HTTP ${response.status}`, { status: response.status });
    }
    if (envelope.result === undefined || envelope.result === null || typeof envelope.result !== "object") {
      throw new QuobyteRpcError("http", method, "the answer has no result and no error");
    }
    return envelope.result as T;
  }

  private async post(method: string, body: string, deadline: number, cookie: string | undefined): Promise<Response> {
    const headers: Record<string, string> = { "Content-Type": "application/json", Accept: "application/json" };
    if (cookie) headers.Cookie = cookie;
    else headers.Authorization = this.authorization;
    const remaining = deadline - Date.now();
    if (remaining <= 0) throw timeoutError(method, this.options.timeoutMs);
    try {
      return await fetch(this.options.url, {
        method: "POST",
        headers,
        body,
        signal: AbortSignal.timeout(remaining),
        redirect: "error",
        ...(this.options.ca ? { tls: { ca: this.options.ca } } : {}),
      });
    } catch (error) {
      throw this.fetchError(method, error);
    }
  }

  private async readText(method: string, response: Response, deadline: number): Promise<string> {
    try {
      return await response.text();
    } catch (error) {
      if (Date.now() >= deadline) throw timeoutError(method, this.options.timeoutMs);
      throw this.fetchError(method, error);
    }
  }

  private fetchError(method: string, error: unknown): QuobyteRpcError {
    const name = error instanceof Error ? error.name : "";
    if (name === "TimeoutError" || name === "AbortError") return timeoutError(method, this.options.timeoutMs);
    const detail = messageOf(error);
    return new QuobyteRpcError("transport", method, `cannot reach ${redactUrl(this.options.url)}: ${detail}`, { cause: error });
  }
}

function backoffMs(attempt: number): number {
  return 100 * 3 ** (attempt - 1);
}

function timeoutError(method: string, ms: number): QuobyteRpcError {
  return new QuobyteRpcError("timeout", method, `no answer within ${ms} ms`);
}

/** A short, tag-free excerpt of an HTML error page. */
function snippet(text: string): string {
  const plain = text.replace(/<[^>]*>/g, " ").replace(/\s+/g, " ").trim();
  return JSON.stringify(plain.length > 120 ? `${plain.slice(0, 120)}...` : plain);
}

/** URLs may carry user:password@; they never reach a message. */
export function redactUrl(url: string): string {
  // By text first: "admin:pw@api:7860" (no scheme) parses as a URL whose path keeps the password.
  const stripped = url.replace(/^([^/?#@]*\/\/)?[^/?#]*@/, "$1");
  try {
    const parsed = new URL(stripped);
    parsed.username = "";
    parsed.password = "";
    return parsed.toString();
  } catch {
    return stripped;
  }
}
