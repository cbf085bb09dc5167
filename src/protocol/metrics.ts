/** Upper bounds (seconds) of the request latency histogram. */
const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** One endpoint's figures. Bucket counts are per bucket here, cumulated when rendered. */
interface Series {
  ok: number;
  failed: number;
  /** counts[i]: requests in (BUCKETS[i-1], BUCKETS[i]]; the last slot is over every bound. */
  counts: number[];
  sum: number;
}

/** Gauges read at scrape time from the driver. */
export interface GaugeValues {
  volumes: number;
  activeMounts: number;
  storageLive: boolean;
}

/**
 * Request counters and latency histograms per endpoint, errors per code, in the
 * Prometheus text format. An observation is on every request and a scrape is rare: one
 * map lookup and one bucket increment per request, the cumulative sums at scrape time.
 */
export class Metrics {
  private readonly series = new Map<string, Series>();
  private readonly errors = new Map<string, number>();

  observe(endpoint: string, seconds: number, errorCode?: string): void {
    let series = this.series.get(endpoint);
    if (!series) {
      series = { ok: 0, failed: 0, counts: new Array<number>(BUCKETS.length + 1).fill(0), sum: 0 };
      this.series.set(endpoint, series);
    }
    if (errorCode === undefined) series.ok++;
    else {
      series.failed++;
      this.errors.set(errorCode, (this.errors.get(errorCode) ?? 0) + 1);
    }
    let bucket = 0;
    while (bucket < BUCKETS.length && seconds > (BUCKETS[bucket] as number)) bucket++;
    series.counts[bucket] = (series.counts[bucket] as number) + 1;
    series.sum += seconds;
  }

  render(gauges: GaugeValues): string {
    const lines: string[] = [];
    lines.push("# HELP dqp_requests_total Plugin protocol requests by endpoint and outcome.", "# TYPE dqp_requests_total counter");
    for (const [endpoint, series] of this.series) {
      if (series.ok > 0) lines.push(`dqp_requests_total{endpoint="${endpoint}",outcome="ok"} ${series.ok}`);
      if (series.failed > 0) lines.push(`dqp_requests_total{endpoint="${endpoint}",outcome="error"} ${series.failed}`);
    }
    lines.push("# HELP dqp_request_duration_seconds Time to answer a protocol request.", "# TYPE dqp_request_duration_seconds histogram");
    for (const [endpoint, series] of this.series) {
      let cumulative = 0;
      BUCKETS.forEach((bound, i) => {
        cumulative += series.counts[i] ?? 0;
        lines.push(`dqp_request_duration_seconds_bucket{endpoint="${endpoint}",le="${bound}"} ${cumulative}`);
      });
      const count = series.ok + series.failed;
      lines.push(`dqp_request_duration_seconds_bucket{endpoint="${endpoint}",le="+Inf"} ${count}`);
      lines.push(`dqp_request_duration_seconds_sum{endpoint="${endpoint}"} ${series.sum}`);
      lines.push(`dqp_request_duration_seconds_count{endpoint="${endpoint}"} ${count}`);
    }
    lines.push("# HELP dqp_errors_total Failed requests by error code.", "# TYPE dqp_errors_total counter");
    for (const [code, value] of this.errors) lines.push(`dqp_errors_total{code="${code}"} ${value}`);
    lines.push("# HELP dqp_volumes Volumes this plugin manages.", "# TYPE dqp_volumes gauge", `dqp_volumes ${gauges.volumes}`);
    lines.push("# HELP dqp_active_mounts Mounts held on this host.", "# TYPE dqp_active_mounts gauge", `dqp_active_mounts ${gauges.activeMounts}`);
    lines.push(
      "# HELP dqp_storage_up Whether the storage mount is live (1) or not (0).",
      "# TYPE dqp_storage_up gauge",
      `dqp_storage_up ${gauges.storageLive ? 1 : 0}`,
    );
    return `${lines.join("\n")}\n`;
  }
}
