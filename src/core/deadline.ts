import { PluginError } from "./errors.ts";

/**
 * Rejects with a TIMEOUT error when `work` does not settle within `ms`. The engine gives
 * up after 60-120 s and then leaks state (a late Mount is never unmounted), so we answer
 * well before it does. The work itself keeps running; its late result is ignored.
 */
export async function withDeadline<T>(
  work: Promise<T>,
  ms: number,
  what: string,
  volume?: string,
  /** Aborted when the deadline passes, so late work can decline to commit its result. */
  controller?: AbortController,
): Promise<T> {
  if (!(ms > 0) || !Number.isFinite(ms)) return work;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = new PluginError("TIMEOUT", `${what} did not finish within ${ms} ms`, { volume });
      controller?.abort(error);
      reject(error);
    }, ms);
  });
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
  }
}
