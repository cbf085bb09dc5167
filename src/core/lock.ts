/**
 * One mutex per key (volume name). Operations on different volumes never wait for each
 * other; operations on the same volume run one at a time in arrival order. Entries are
 * dropped as soon as nobody holds or waits for them, so the map stays as small as the
 * number of volumes in flight.
 */
export class KeyedLock {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const done = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tail = previous.then(() => done);
    this.tails.set(key, tail);
    try {
      await previous;
      return await task();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }

  /** Keys currently held or awaited (for tests and status). */
  get size(): number {
    return this.tails.size;
  }
}
