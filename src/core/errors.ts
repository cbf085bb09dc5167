/**
 * Every failure the plugin reports carries one of these stable codes. Operators and
 * scripts match on the code; the message is for humans and may change.
 */
export type ErrorCode =
  | "INVALID_REQUEST" // the HTTP body was empty, not JSON, or had the wrong shape
  | "REQUEST_TOO_LARGE" // the HTTP body exceeded the size limit
  | "UNKNOWN_ENDPOINT" // a path the protocol does not define
  | "INVALID_NAME" // a volume name we refuse (path tricks, too long, ...)
  | "INVALID_OPTION" // an unknown option or a value that does not parse
  | "VOLUME_NOT_FOUND"
  | "VOLUME_IN_USE" // Remove while mounted on this host
  | "NOT_MOUNTED" // Path for a volume with no mount on this host
  | "NOT_MANAGED" // Remove of a volume this plugin neither created nor adopted
  | "BACKEND_FAILED" // the storage (directory tree, API) failed
  | "STATE_FAILED" // the local mount state could not be read or written
  | "TIMEOUT" // an operation exceeded its deadline
  | "INTERNAL"; // a bug: anything not classified above

/** The one error type the core throws; the protocol layer maps it to {"Err": ...}. */
export class PluginError extends Error {
  override readonly name = "PluginError";
  readonly code: ErrorCode;
  /** The volume the failure concerns, for logs. */
  readonly volume: string | undefined;

  constructor(code: ErrorCode, message: string, options: { volume?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.volume = options.volume;
  }
}

/** Wraps anything thrown by lower layers so callers always see a PluginError. */
export function asPluginError(error: unknown, fallback: ErrorCode = "INTERNAL"): PluginError {
  if (error instanceof PluginError) return error;
  return new PluginError(fallback, messageOf(error), { cause: error });
}

/** Node/Bun system errors carry an errno code such as ENOENT. */
export function errnoCode(error: unknown): string | undefined {
  if (typeof error === "object" && error !== null && "code" in error) {
    const code = (error as { code: unknown }).code;
    return typeof code === "string" ? code : undefined;
  }
  return undefined;
}

/** The message of anything thrown, for error texts and logs. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
