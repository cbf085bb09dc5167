/** Error texts, error codes and parameter normalisation of the fake Quobyte API. */

/**
 * Application error codes. Only "2 = not found" is evidenced (manila); the rest are
 * assumed small positive integers (reference §2.3, §5.2.7).
 */
export const FAKE_ERROR_CODES: Readonly<Record<string, number>> = {
  ENTITY_NOT_FOUND: 2,
  ENTITY_EXISTS_ALREADY: 3,
  PERMISSION_DENIED: 4,
  INVALID_ARGUMENT: 5,
  RETRY_OTHER_IMMEDIATELY: 6,
  INVALID_OPERATION: 7,
};

/** Code for an error message "<TYPE>[/<POSIX>]: ...": known type ⇒ its code, else 1. */
export function errorCodeFor(message: string): number {
  const token = /^([A-Z_]+)/.exec(message)?.[1];
  return (token !== undefined ? FAKE_ERROR_CODES[token] : undefined) ?? 1;
}

/** A JSON-RPC error answer (HTTP 200). */
export class RpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** Malformed request or parameters: -32600 with an empty message. */
export function invalidRequest(): RpcError {
  return new RpcError(-32600, "");
}

export type ErrorType =
  | "ENTITY_NOT_FOUND"
  | "ENTITY_EXISTS_ALREADY"
  | "PERMISSION_DENIED"
  | "INVALID_ARGUMENT"
  | "INVALID_OPERATION";

export function formatAppError(type: string, text: string, posixSuffix: boolean): string {
  return posixSuffix ? `${type}/POSIX_ERROR_NONE: ${text} /` : `${type}: ${text}`;
}

export type Params = Record<string, unknown>;

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Optional string parameter; wrong type ⇒ -32600. Empty string counts as absent. */
export function optString(p: Params, key: string): string | undefined {
  const v = p[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw invalidRequest();
  return v === "" ? undefined : v;
}

export function optBool(p: Params, key: string): boolean {
  const v = p[key];
  if (v === undefined || v === null) return false;
  if (typeof v !== "boolean") throw invalidRequest();
  return v;
}

/** A list parameter that may also be given as a single element. */
export function optList(p: Params, key: string): unknown[] {
  const v = p[key];
  if (v === undefined || v === null) return [];
  return Array.isArray(v) ? v : [v];
}

export function optStringList(p: Params, key: string): string[] {
  return optList(p, key).map((x) => {
    if (typeof x !== "string") throw invalidRequest();
    return x;
  });
}

/** Non-negative integer given as a JSON number or a decimal string. */
export function optInteger(p: Params, key: string): number | undefined {
  const v = p[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v === "number" && Number.isSafeInteger(v)) return v;
  if (typeof v === "string" && /^-?[0-9]+$/.test(v)) return Number(v);
  throw invalidRequest();
}

/** Enum given by name or number; `numbers` maps the known numeric values. */
export function enumValue(v: unknown, names: readonly string[], numbers: Readonly<Record<number, string>>): string {
  if (typeof v === "string" && names.includes(v)) return v;
  if (typeof v === "number" && numbers[v] !== undefined) return numbers[v];
  throw invalidRequest();
}

export const CONSUMER_TYPES = [
  "DEVICE",
  "FAILURE_DOMAIN",
  "GROUP",
  "SYSTEM",
  "TENANT",
  "USER",
  "VOLUME",
  "VOLUME_SNAPSHOT",
] as const;
/** Only VOLUME=3 is evidenced (manila). */
export const CONSUMER_TYPE_NUMBERS: Readonly<Record<number, string>> = { 3: "VOLUME" };

export const RESOURCE_TYPES = [
  "DIRECTORY_COUNT",
  "FILE_COUNT",
  "LOGICAL_DISK_SPACE",
  "HDD_LOGICAL_DISK_SPACE",
  "SSD_LOGICAL_DISK_SPACE",
  "PHYSICAL_DISK_SPACE",
  "HDD_PHYSICAL_DISK_SPACE",
  "SSD_PHYSICAL_DISK_SPACE",
  "VOLUME_COUNT",
] as const;
/** Only LOGICAL_DISK_SPACE=5 is evidenced (manila). */
export const RESOURCE_TYPE_NUMBERS: Readonly<Record<number, string>> = { 5: "LOGICAL_DISK_SPACE" };

const UUID_V4 = /^[a-fA-F0-9]{8}-[a-fA-F0-9]{4}-4[a-fA-F0-9]{3}-[89abAB][a-fA-F0-9]{3}-[a-fA-F0-9]{12}$/;

export function isUuidV4(s: string): boolean {
  return UUID_V4.test(s);
}
