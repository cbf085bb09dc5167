// Closed-loop load: P connections, each sending its own cyclic script of prebuilt
// requests one at a time (the engine never pipelines), for a warm-up and then a measured
// window. Latency is send-to-complete-reply as the engine would see it.

import { Connection, isSuccess, type Reply } from "./client.ts";
import { percentile, Samples } from "./stats.ts";

/** What one connection sends, round and round: request bytes and a label index each. */
export interface Script {
  requests: Uint8Array[];
  labels: number[];
}

export interface LabelFigures {
  label: string;
  count: number;
  p50: number;
  p99: number;
}

export interface LoadResult {
  connections: number;
  /** Requests completed inside the measured window. */
  requests: number;
  seconds: number;
  rps: number;
  p50: number;
  p99: number;
  max: number;
  perLabel: LabelFigures[];
  /** Every request sent, warm-up and tail included (for the RSS-after-N figure). */
  sent: number;
  /** The measured latencies, ascending, overall and per label (for merging runs). */
  samples: Float64Array;
  labelSamples: Float64Array[];
}

export interface LoadOptions {
  connections: number;
  warmupMs: number;
  durationMs: number;
  labels: string[];
  /** Replies are checked for success (status 200, no Err) unless this is false. */
  check?: boolean;
  /** Ends the run once this many requests were sent in total (warm-up included). */
  stopAfter?: number;
}

export async function closedLoop(
  socket: string,
  script: (connection: number) => Script,
  options: LoadOptions,
): Promise<LoadResult> {
  const { connections, labels } = options;
  const all = new Samples();
  const perLabel = labels.map(() => new Samples());
  const conns = await Promise.all(Array.from({ length: connections }, () => Connection.open(socket)));
  let recording = false;
  let done = false;
  let sent = 0;
  let failure: string | undefined;
  let windowStart = 0;
  let windowEnd = 0;

  const worker = async (index: number, connection: Connection) => {
    const { requests, labels: labelOf } = script(index);
    let i = 0;
    // Stop only at the end of a script round, so that the next run (or round) starts
    // from a clean state (a crud cycle cut after Mount would leave the volume in use).
    while (!done || i % requests.length !== 0) {
      const k = i % requests.length;
      i++;
      const started = performance.now();
      const reply: Reply = await connection.send(requests[k] as Uint8Array);
      const ms = performance.now() - started;
      sent++;
      if (options.stopAfter !== undefined && sent >= options.stopAfter && !done) {
        windowEnd = performance.now();
        done = true;
      }
      if (options.check !== false && !isSuccess(reply)) {
        failure ??= `${labels[labelOf[k] as number]}: HTTP ${reply.status} ${reply.body.toString("utf8").slice(0, 300)}`;
        done = true;
        break;
      }
      if (recording && !done) {
        all.push(ms);
        perLabel[labelOf[k] as number]?.push(ms);
      }
    }
  };

  const timer = (async () => {
    const warm = performance.now() + options.warmupMs;
    while (!done && performance.now() < warm) await Bun.sleep(Math.min(50, warm - performance.now()));
    recording = true;
    windowStart = performance.now();
    const until = performance.now() + options.durationMs;
    while (!done && performance.now() < until) await Bun.sleep(Math.min(50, until - performance.now()));
    if (!done) windowEnd = performance.now();
    done = true;
  })();
  try {
    await Promise.all(conns.map((connection, index) => worker(index, connection)));
  } finally {
    done = true;
    for (const connection of conns) connection.close();
  }
  await timer;
  if (failure) throw new Error(`request failed under load: ${failure}`);

  const seconds = (windowEnd - windowStart) / 1000;
  return summarize(
    connections,
    seconds,
    all.sorted(),
    perLabel.map((samples) => samples.sorted()),
    labels,
    sent,
  );
}

function summarize(
  connections: number,
  seconds: number,
  everything: Float64Array,
  labelSamples: Float64Array[],
  labels: string[],
  sent: number,
): LoadResult {
  return {
    connections,
    requests: everything.length,
    seconds,
    rps: everything.length / seconds,
    p50: percentile(everything, 50),
    p99: percentile(everything, 99),
    max: percentile(everything, 100),
    perLabel: labelSamples.map((s, index) => ({
      label: labels[index] as string,
      count: s.length,
      p50: percentile(s, 50),
      p99: percentile(s, 99),
    })),
    sent,
    samples: everything,
    labelSamples,
  };
}

function concatSorted(arrays: Float64Array[]): Float64Array {
  const out = new Float64Array(arrays.reduce((n, a) => n + a.length, 0));
  let at = 0;
  for (const a of arrays) {
    out.set(a, at);
    at += a.length;
  }
  return out.sort();
}

/**
 * Several measured windows merged into one result: latencies pooled, throughput the
 * MEDIAN of the windows' throughputs (robust to a noisy neighbour hitting one window).
 */
export function mergeRuns(runs: LoadResult[], labels: string[]): LoadResult & { roundRps: number[] } {
  const roundRps = runs.map((r) => r.rps);
  const merged = summarize(
    runs[0]?.connections ?? 0,
    runs.reduce((n, r) => n + r.seconds, 0),
    concatSorted(runs.map((r) => r.samples)),
    labels.map((_, i) => concatSorted(runs.map((r) => r.labelSamples[i] ?? new Float64Array()))),
    labels,
    runs.reduce((n, r) => n + r.sent, 0),
  );
  const ordered = [...roundRps].sort((a, b) => a - b);
  const mid = ordered.length >> 1;
  merged.rps = ordered.length % 2 ? (ordered[mid] as number) : ((ordered[mid - 1] as number) + (ordered[mid] as number)) / 2;
  return { ...merged, roundRps };
}
