/**
 * One mutex per key (volume name). Operations on different volumes never wait for each
 * other; operations on the same volume run one at a time in arrival order. Entries are
 * dropped as soon as nobody holds or waits for them, so the map stays as small as the
 * number of volumes in flight.
 *
 * An uncontended run (almost every request) creates no promise of its own: the key maps
 * to the queue of waiters, and a finishing holder hands the lock to the first of them.
 */
export class KeyedLock {
  private readonly waiters = new Map<string, (() => void)[]>();

  async run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const queue = this.waiters.get(key);
    if (queue) await new Promise<void>((resolve) => queue.push(resolve));
    else this.waiters.set(key, []);
    try {
      return await task();
    } finally {
      const next = this.waiters.get(key)?.shift();
      if (next) next();
      else this.waiters.delete(key);
    }
  }

  /** Keys currently held or awaited (for tests and status). */
  get size(): number {
    return this.waiters.size;
  }
}
