import { asPluginError, type ErrorCode, type PluginError } from "../core/errors.ts";

/** HTTP status per error code. The engine reads only `Err`; the status is for humans. */
const STATUS: Partial<Record<ErrorCode, number>> = {
  INVALID_REQUEST: 400,
  REQUEST_TOO_LARGE: 413,
  UNKNOWN_ENDPOINT: 404,
};

export interface ErrorReply {
  status: number;
  body: { Err: string };
  error: PluginError;
}

/**
 * THE place where failures become the protocol's `{"Err": ...}`. The code travels in the
 * text so that `docker` users and scripts see it: `... does not exist [VOLUME_NOT_FOUND]`.
 * Non-2xx statuses make the engine prefix the method (`VolumeDriver.Mount: ...`).
 */
export function errorReply(thrown: unknown): ErrorReply {
  const error = asPluginError(thrown);
  const message = error.code === "INTERNAL" ? `internal error: ${error.message}` : error.message;
  return { status: STATUS[error.code] ?? 500, body: { Err: `${message} [${error.code}]` }, error };
}
