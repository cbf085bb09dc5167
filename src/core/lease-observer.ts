/**
 * Leases by observation: whether another host is alive is judged only by whether its
 * heartbeat value changed within the lease, timed on THIS process's monotonic clock.
 * Another host's wall clock is never compared with ours (clocks drift and NTP steps them).
 *
 * A host seen for the first time counts as alive for a full lease from that moment: we
 * cannot know how long its value has been standing still, so we assume the worst case
 * for the data (still mounted) rather than the best.
 */
export class LeaseObserver {
  private readonly seen = new Map<string, { value: string; changedAt: number }>();

  constructor(
    readonly leaseMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Records the heartbeat value read for `host` (undefined: its file is missing). */
  observe(host: string, value: string | undefined): void {
    const current = value ?? "";
    const known = this.seen.get(host);
    if (!known || known.value !== current) this.seen.set(host, { value: current, changedAt: this.now() });
  }

  /** True while `host`'s heartbeat changed less than one lease ago (or was never judged yet). */
  alive(host: string): boolean {
    const known = this.seen.get(host);
    return !known || this.now() - known.changedAt < this.leaseMs;
  }

  /** Milliseconds since `host`'s heartbeat last changed, on our clock; undefined if never seen. */
  silentFor(host: string): number | undefined {
    const known = this.seen.get(host);
    return known && this.now() - known.changedAt;
  }
}
