import { PluginError } from "./errors.ts";

/** How often pending deadlines are checked: the precision of every deadline. */
const SWEEP_MS = 25;

interface Pending {
  /** performance.now() at which it expires. */
  at: number;
  expire(): void;
}

/**
 * All pending deadlines, checked by ONE timer that runs only while some are pending.
 * Every protocol request has a deadline and almost none expire: a timer armed and
 * cleared per request costs more than the request's own work on the hot path.
 */
class Sweeper {
  private readonly pending = new Set<Pending>();
  private timer: ReturnType<typeof setInterval> | undefined;

  add(entry: Pending): void {
    this.pending.add(entry);
    // Referenced, like a timer per deadline was: a pending deadline must fire even when
    // the work it bounds holds nothing else open. It stops once nothing is pending.
    this.timer ??= setInterval(() => this.sweep(), SWEEP_MS);
  }

  delete(entry: Pending): void {
    this.pending.delete(entry);
  }

  private sweep(): void {
    if (this.pending.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
      return;
    }
    const now = performance.now();
    for (const entry of this.pending) {
      if (entry.at > now) continue;
      this.pending.delete(entry);
      entry.expire();
    }
  }

  /** Deadlines pending (for tests). */
  get size(): number {
    return this.pending.size;
  }

  get running(): boolean {
    return this.timer !== undefined;
  }
}

const sweeper = new Sweeper();

/** For tests: pending deadlines and whether the shared timer runs. */
export function deadlineState(): { pending: number; timerRunning: boolean } {
  return { pending: sweeper.size, timerRunning: sweeper.running };
}

/**
 * Tells late work that its deadline passed, so that it can decline to commit its result.
 * What an AbortController would do for this, without allocating one per request.
 */
export class Expiry {
  private expired = false;
  private reason: unknown;

  abort(reason: unknown): void {
    this.expired = true;
    this.reason = reason;
  }

  throwIfExpired(): void {
    if (this.expired) throw this.reason;
  }
}

/**
 * Rejects with a TIMEOUT error when `work` does not settle within `ms` (to within
 * SWEEP_MS). The engine gives up after 60-120 s and then leaks state (a late Mount is
 * never unmounted), so we answer well before it does. The work itself keeps running; its
 * late result is ignored. `what` may be a function, so that the message is only built
 * for the rare request that times out.
 */
export function withDeadline<T>(
  work: Promise<T>,
  ms: number,
  what: string | (() => string),
  volume?: string,
  /** Aborted when the deadline passes, so late work can decline to commit its result. */
  expiry?: Expiry,
): Promise<T> {
  if (!(ms > 0) || !Number.isFinite(ms)) return work;
  return new Promise<T>((resolve, reject) => {
    const entry: Pending = {
      at: performance.now() + ms,
      expire() {
        const error = new PluginError("TIMEOUT", `${typeof what === "string" ? what : what()} did not finish within ${ms} ms`, { volume });
        expiry?.abort(error);
        reject(error);
      },
    };
    sweeper.add(entry);
    work.then(
      (value) => {
        sweeper.delete(entry);
        resolve(value);
      },
      (error: unknown) => {
        sweeper.delete(entry);
        reject(error);
      },
    );
  });
}
