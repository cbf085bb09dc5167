/**
 * Runs `attempt` until it succeeds or fails for another reason than `missing`, for up to
 * `patienceMs`. On a shared filesystem an entry another host just created may stay
 * invisible to this client for a moment after mkdir said EEXIST (its name cache still
 * says "no such entry"): look again before calling it missing.
 */
export async function lookAgainWhileMissing<T>(attempt: () => Promise<T>, missing: (error: unknown) => boolean, patienceMs = 2000): Promise<T> {
  const deadline = performance.now() + patienceMs;
  for (;;) {
    try {
      return await attempt();
    } catch (error) {
      if (!missing(error) || performance.now() >= deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
