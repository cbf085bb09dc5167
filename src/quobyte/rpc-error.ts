/** How a Quobyte API call failed; decides retries and the user's message. */
export type RpcFailure =
  | "auth" // 401 although we sent credentials
  | "http" // a non-2xx status or a body that is not JSON-RPC
  | "transport" // connection refused, reset, closed before an answer
  | "timeout" // no answer before the deadline
  | "rpc"; // the API answered with a JSON-RPC error

/** A failed Quobyte API call. Never carries credentials. */
export class QuobyteRpcError extends Error {
  override readonly name = "QuobyteRpcError";

  constructor(
    readonly failure: RpcFailure,
    readonly method: string,
    message: string,
    readonly details: {
      /** First token of the API's error text, e.g. ENTITY_NOT_FOUND. */
      errorType?: string;
      code?: number;
      status?: number;
      cause?: unknown;
    } = {},
  ) {
    super(`Quobyte API ${method}: ${message}`, details.cause === undefined ? undefined : { cause: details.cause });
  }

  get errorType(): string | undefined {
    return this.details.errorType;
  }
}

const JSON_RPC_CODES: Record<number, string> = {
  [-32600]: "ERROR_CODE_INVALID_REQUEST",
  [-32601]: "ERROR_CODE_METHOD_NOT_FOUND",
  [-32603]: "ERROR_CODE_JSON_ENCODING_FAILED",
  [-32700]: "ERROR_CODE_PARSE_ERROR",
};

/**
 * The API's error texts look like `ENTITY_EXISTS_ALREADY/POSIX_ERROR_NONE: Volume name
 * x is already used by volume <uuid> /`; newer servers drop the `/POSIX_...` part. The
 * type is the leading token either way.
 */
export function errorTypeOf(message: string): string | undefined {
  return /^([A-Z][A-Z0-9_]+)(?:\/[A-Z0-9_]+)?:/.exec(message.trim())?.[1];
}

export function rpcErrorFromEnvelope(method: string, error: { code?: unknown; message?: unknown }): QuobyteRpcError {
  const code = typeof error.code === "number" ? error.code : undefined;
  const text = typeof error.message === "string" ? error.message.trim() : "";
  const message = text || (code !== undefined ? (JSON_RPC_CODES[code] ?? `error code ${code}`) : "unknown error");
  return new QuobyteRpcError("rpc", method, message, { errorType: errorTypeOf(text), code });
}
