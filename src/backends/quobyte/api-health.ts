import { messageOf } from "../../core/errors.ts";
import type { ProbeResult } from "../../core/types.ts";
import { QuobyteRpcError } from "../../quobyte/rpc-error.ts";

/** A failed API probe as a state word and the one thing the operator should check. */
export function classifyApiFailure(error: unknown): ProbeResult {
  const message = messageOf(error);
  if (!(error instanceof QuobyteRpcError)) return { ok: false, state: "failing", detail: message };
  switch (error.failure) {
    case "auth":
      return {
        ok: false,
        state: "unauthenticated",
        detail: `${message}: fix QUOBYTE_API_USER / QUOBYTE_API_PASSWORD (env file, environment or --password-file), then restart the plugin`,
      };
    case "transport":
    case "timeout":
      return {
        ok: false,
        state: "unreachable",
        detail: `${message}: check QUOBYTE_API_URL and that the API service runs and is reachable from this host; existing volumes keep working, Create and Remove fail until it answers`,
      };
    default:
      return { ok: false, state: "failing", detail: message };
  }
}
