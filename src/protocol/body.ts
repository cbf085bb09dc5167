import { PluginError } from "../core/errors.ts";

/** The engine sends bodies of a few hundred bytes; anything this large is not the engine. */
export const MAX_BODY_BYTES = 1024 * 1024;

// Invalid UTF-8 becomes U+FFFD, as the engine's Go JSON encoder would have produced.
const decoder = new TextDecoder("utf-8", { fatal: false });

/**
 * Reads a request body as text, refusing more than `limit` bytes without buffering them:
 * a declared Content-Length over the limit is refused before reading, a chunked body
 * is counted as it arrives.
 */
export async function readBody(request: Request, limit = MAX_BODY_BYTES): Promise<string> {
  const declared = request.headers.get("content-length");
  if (declared !== null) {
    const length = Number(declared);
    if (length > limit) throw tooLarge(limit);
    // The engine always declares its length: read it in one go, without materialising
    // `request.body` as a stream (a measurable share of a request's cost). text() decodes
    // invalid UTF-8 to U+FFFD too, natively.
    return length === 0 ? "" : await request.text();
  }
  if (!request.body) return "";
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = request.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => {});
      throw tooLarge(limit);
    }
    chunks.push(value);
  }
  return decoder.decode(Buffer.concat(chunks));
}

/**
 * Parses a body that must be a JSON object. An empty body means `{}`, as in the Go plugin
 * helpers: Capabilities or List probed by curl or a health check has nothing to send.
 * Nothing is acted on by mistake: endpoints that need a Name or an ID refuse `{}` with
 * their own error (schema.ts), before any work.
 */
export function parseObject(text: string): Record<string, unknown> {
  if (text.trim().length === 0) return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new PluginError("INVALID_REQUEST", "request body is not valid JSON; nothing was done");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new PluginError("INVALID_REQUEST", "request body must be a JSON object; nothing was done");
  }
  return value as Record<string, unknown>;
}

function tooLarge(limit: number): PluginError {
  return new PluginError("REQUEST_TOO_LARGE", `request body exceeds ${limit} bytes; nothing was done`);
}
