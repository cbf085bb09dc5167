/** Upper bounds (seconds) of the request latency histogram. */
const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

interface Histogram {
  counts: number[];
  sum: number;
  count: number;
}

/** Gauges read at scrape time from the driver. */
export interface GaugeValues {
  volumes: number;
  activeMounts: number;
  storageLive: boolean;
}

/**
 * Request counters and latency histograms per endpoint, errors per code, in the
 * Prometheus text format. Plain maps: a scrape is rare, an observation is on every request.
 */
export class Metrics {
  private readonly requests = new Map<string, number>();
  private readonly latency = new Map<string, Histogram>();
  private readonly errors = new Map<string, number>();

  observe(endpoint: string, seconds: number, errorCode?: string): void {
    const outcome = errorCode === undefined ? "ok" : "error";
    const key = `${endpoint}\u0000${outcome}`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
    if (errorCode !== undefined) this.errors.set(errorCode, (this.errors.get(errorCode) ?? 0) + 1);
    let histogram = this.latency.get(endpoint);
    if (!histogram) {
      histogram = { counts: BUCKETS.map(() => 0), sum: 0, count: 0 };
      this.latency.set(endpoint, histogram);
    }
    for (let i = 0; i < BUCKETS.length; i++) if (seconds <= (BUCKETS[i] ?? 0)) histogram.counts[i] = (histogram.counts[i] ?? 0) + 1;
    histogram.sum += seconds;
    histogram.count++;
  }

  render(gauges: GaugeValues): string {
    const lines: string[] = [];
    lines.push("# HELP dqp_requests_total Plugin protocol requests by endpoint and outcome.", "# TYPE dqp_requests_total counter");
    for (const [key, value] of this.requests) {
      const [endpoint, outcome] = key.split("\u0000");
      lines.push(`dqp_requests_total{endpoint="${endpoint}",outcome="${outcome}"} ${value}`);
    }
    lines.push("# HELP dqp_request_duration_seconds Time to answer a protocol request.", "# TYPE dqp_request_duration_seconds histogram");
    for (const [endpoint, h] of this.latency) {
      BUCKETS.forEach((bound, i) => lines.push(`dqp_request_duration_seconds_bucket{endpoint="${endpoint}",le="${bound}"} ${h.counts[i] ?? 0}`));
      lines.push(`dqp_request_duration_seconds_bucket{endpoint="${endpoint}",le="+Inf"} ${h.count}`);
      lines.push(`dqp_request_duration_seconds_sum{endpoint="${endpoint}"} ${h.sum}`);
      lines.push(`dqp_request_duration_seconds_count{endpoint="${endpoint}"} ${h.count}`);
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
