// The phases of the scale simulation. Each host's API calls arrive on its own URL path,
// so every phase counts calls per host (before/after deltas of that host's path) and per
// method, while the hosts run their parts of the phase at the same time.

import type { Cluster, Host } from "./cluster.ts";

export interface PhaseResult {
  name: string;
  /** What one operation is ("Get", "Mount+Unmount pair", "host-minute", ...). */
  op: string;
  ops: number;
  seconds: number;
  calls: number;
  callsPerOp: number;
  /** Calls per host: min, mean, max. */
  perHost: { min: number; mean: number; max: number };
  /** The largest calls-per-op of any single host. */
  worstHostPerOp: number;
  byMethod: Record<string, number>;
}

/** Deterministic choices, so that two runs do the same work. */
export class Rng {
  constructor(private state: number) {}
  next(): number {
    this.state = (this.state * 1664525 + 1013904223) >>> 0;
    return this.state / 2 ** 32;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
}

function hostCalls(cluster: Cluster, host: Host): Record<string, number> {
  return cluster.fake.pathCounts()[host.apiPath] ?? {};
}

const sum = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0);

interface HostShare {
  ops: number;
  delta: Record<string, number>;
}

/** What `work` cost this host's path on the API, method by method. */
async function measured(cluster: Cluster, host: Host, work: () => Promise<number>): Promise<HostShare> {
  const before = hostCalls(cluster, host);
  const ops = await work();
  const after = hostCalls(cluster, host);
  const delta: Record<string, number> = {};
  for (const [method, n] of Object.entries(after)) {
    const d = n - (before[method] ?? 0);
    if (d > 0) delta[method] = d;
  }
  return { ops, delta };
}

function summarize(name: string, op: string, shares: HostShare[], seconds: number): PhaseResult {
  const byMethod: Record<string, number> = {};
  for (const { delta } of shares) for (const [method, n] of Object.entries(delta)) byMethod[method] = (byMethod[method] ?? 0) + n;
  const perHostCalls = shares.map(({ delta }) => sum(delta));
  const ops = shares.reduce((a, r) => a + r.ops, 0);
  const calls = sum(byMethod);
  return {
    name,
    op,
    ops,
    seconds,
    calls,
    callsPerOp: ops === 0 ? 0 : calls / ops,
    perHost: {
      min: Math.min(...perHostCalls),
      mean: perHostCalls.reduce((a, b) => a + b, 0) / perHostCalls.length,
      max: Math.max(...perHostCalls),
    },
    worstHostPerOp: Math.max(...shares.map(({ ops: n, delta }) => (n === 0 ? 0 : sum(delta) / n))),
    byMethod,
  };
}

/**
 * Runs `work` on every host at once and counts what each host cost the API. `work`
 * returns how many operations the host did.
 */
export async function phase(cluster: Cluster, name: string, op: string, work: (host: Host) => Promise<number>): Promise<PhaseResult> {
  const started = performance.now();
  const shares = await Promise.all(cluster.hosts.map((host) => measured(cluster, host, () => work(host))));
  return summarize(name, op, shares, (performance.now() - started) / 1000);
}

export const volumeName = (i: number) => `vol-${String(i).padStart(4, "0")}`;

/** Volumes created round robin: host i creates volumes i, i+N, i+2N, ... */
export function createRoundRobin(cluster: Cluster, volumes: number): Promise<PhaseResult> {
  const n = cluster.hosts.length;
  return phase(cluster, "create (round robin)", "Create", async (host) => {
    let done = 0;
    for (let v = host.index; v < volumes; v += n) {
      await host.call("VolumeDriver.Create", { Name: volumeName(v), Opts: v % 3 === 0 ? { size: "1G" } : {} });
      done++;
    }
    return done;
  });
}

/**
 * Every host Gets every volume another host created (its first look at them), then at
 * once all volumes again and Path of the volumes it holds: those are within the TTL.
 */
export async function getsFromOthers(cluster: Cluster, volumes: number, held: number): Promise<[PhaseResult, PhaseResult]> {
  const n = cluster.hosts.length;
  const started = performance.now();
  const shares = await Promise.all(
    cluster.hosts.map(async (host) => {
      const first = await measured(cluster, host, async () => {
        let done = 0;
        for (let v = 0; v < volumes; v++) {
          if (v % n === host.index) continue;
          await host.call("VolumeDriver.Get", { Name: volumeName(v) });
          done++;
        }
        return done;
      });
      const again = await measured(cluster, host, async () => {
        for (let v = 0; v < volumes; v++) await host.call("VolumeDriver.Get", { Name: volumeName(v) });
        for (let m = 0; m < held; m++) await host.call("VolumeDriver.Path", { Name: heldVolume(host, m, volumes) });
        return volumes + held;
      });
      return { first, again };
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return [
    summarize("Gets from other hosts (first look)", "Get", shares.map((s) => s.first), seconds),
    summarize("Gets and Paths again, within the TTL", "Get or Path", shares.map((s) => s.again), seconds),
  ];
}

/**
 * The realistic mix: the caches have gone stale, then each host Gets 25 random volumes
 * at random moments within one TTL, as an engine starting containers does.
 */
export function getMix(cluster: Cluster, volumes: number, ttlMs: number, seed: number): Promise<PhaseResult> {
  return phase(cluster, "Get mix (25 random Gets within one TTL, stale cache)", "Get", async (host) => {
    const rng = new Rng(seed + host.index);
    const at = Array.from({ length: 25 }, () => rng.next() * ttlMs).sort((a, b) => a - b);
    const started = performance.now();
    for (const moment of at) {
      const wait = moment - (performance.now() - started);
      if (wait > 0) await Bun.sleep(wait);
      await host.call("VolumeDriver.Get", { Name: volumeName(rng.int(volumes)) });
    }
    return at.length;
  });
}

/** Mount+Unmount pairs at random moments over two TTLs: fresh, recent and stale caches. */
export function mountPairs(cluster: Cluster, volumes: number, ttlMs: number, pairs: number, seed: number): Promise<PhaseResult> {
  return phase(cluster, `Mount+Unmount (${pairs} pairs per host over 2 TTLs)`, "Mount+Unmount pair", async (host) => {
    const rng = new Rng(seed + host.index);
    for (let p = 0; p < pairs; p++) {
      await Bun.sleep(rng.next() * ((2 * ttlMs) / pairs));
      const name = volumeName(rng.int(volumes));
      const id = `pair-${host.id}-${p}`.padEnd(64, "0");
      await host.call("VolumeDriver.Mount", { Name: name, ID: id });
      await host.call("VolumeDriver.Unmount", { Name: name, ID: id });
    }
    return pairs;
  });
}

const heldVolume = (host: Host, m: number, volumes: number) => volumeName((host.index + m * 7) % volumes);

/** Mounts each host keeps through the rest of the run (idle minute and restart included). */
export function holdMounts(cluster: Cluster, volumes: number, perHost: number): Promise<PhaseResult> {
  return phase(cluster, `Mounts held (${perHost} per host)`, "Mount", async (host) => {
    for (let m = 0; m < perHost; m++) {
      await host.call("VolumeDriver.Mount", { Name: heldVolume(host, m, volumes), ID: `held-${host.id}-${m}`.padEnd(64, "0") });
    }
    return perHost;
  });
}

/** Nothing asked of any host for `seconds`, mounts held: what do the hosts cost the API? */
export function idle(cluster: Cluster, seconds: number): Promise<PhaseResult> {
  return phase(cluster, `idle ${seconds} s with mounts held`, "host-minute", async () => {
    await Bun.sleep(seconds * 1000);
    return seconds / 60;
  });
}

export interface RestartResult {
  phase: PhaseResult;
  startMs: { median: number; max: number };
  /** Seconds after the restart began at which each host made its first API call. */
  firstCalls: number[];
  /** Hosts whose first call fell in the busiest second. */
  peakHostsPerSecond: number;
  /** Calls in the busiest second. */
  peakCallsPerSecond: number;
  /** Calls the engine-shaped List and Gets right after the restart cost. */
  engineCalls: number;
}

/**
 * SIGTERM to every host, all started again at once; each answers its engine's List and
 * Gets from its cache. The API's calls are sampled every 100 ms to show whether the first
 * refreshes are spread (jitter) or all land in the same second.
 */
export async function restart(cluster: Cluster, volumes: number, windowMs: number): Promise<RestartResult> {
  await cluster.stopAll();
  cluster.fake.resetCounts();
  const began = performance.now();
  const firstCall = new Map<string, number>();
  const perSecond: number[] = [];
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const counts = cluster.fake.pathCounts();
      const now = (performance.now() - began) / 1000;
      let total = 0;
      for (const host of cluster.hosts) {
        const calls = sum(counts[host.apiPath] ?? {});
        total += calls;
        if (calls > 0 && !firstCall.has(host.id)) firstCall.set(host.id, now);
      }
      const second = Math.floor(now);
      perSecond[second] = total;
      await Bun.sleep(100);
    }
  })();
  // Each engine sends List and Gets as soon as its plugin serves; every one is answered
  // from the cache the clean stop left.
  const engineShares: HostShare[] = [];
  const startTimes = await cluster.startAll(async (host) => {
    engineShares.push(
      await measured(cluster, host, async () => {
        await host.call("VolumeDriver.List", {});
        for (let v = 0; v < Math.min(volumes, 25); v++) await host.call("VolumeDriver.Get", { Name: volumeName((host.index + v) % volumes) });
        return 1 + Math.min(volumes, 25);
      }),
    );
  });
  const allServing = performance.now();
  const engine = summarize("engine List + Gets right after each start", "List or Get", engineShares, 0);
  // Every host's jittered first refresh falls within the window after its start.
  const remaining = allServing + windowMs + 1500 - performance.now();
  if (remaining > 0) await Bun.sleep(remaining);
  const counts = cluster.fake.pathCounts();
  const result = summarize(
    "cluster-wide restart (whole jitter window)",
    "host restart",
    cluster.hosts.map((host) => ({ ops: 1, delta: counts[host.apiPath] ?? {} })),
    (performance.now() - began) / 1000,
  );
  sampling = false;
  await sampler;
  // Seconds without a sample carry the count of the second before.
  const cumulative: number[] = [];
  for (let i = 0; i < perSecond.length; i++) cumulative.push(perSecond[i] ?? cumulative[i - 1] ?? 0);
  const calls = cumulative.map((v, i) => v - (i === 0 ? 0 : (cumulative[i - 1] ?? 0)));
  const byFirstSecond = new Map<number, number>();
  for (const t of firstCall.values()) byFirstSecond.set(Math.floor(t), (byFirstSecond.get(Math.floor(t)) ?? 0) + 1);
  const sorted = [...startTimes].sort((a, b) => a - b);
  return {
    phase: result,
    startMs: { median: sorted[sorted.length >> 1] ?? 0, max: sorted.at(-1) ?? 0 },
    firstCalls: [...firstCall.values()].sort((a, b) => a - b),
    peakHostsPerSecond: Math.max(0, ...byFirstSecond.values()),
    peakCallsPerSecond: Math.max(0, ...calls),
    engineCalls: engine.calls,
  };
}
