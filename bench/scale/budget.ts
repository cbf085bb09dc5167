// The per-host API budget (issue "a thousand hosts on one Quobyte API") and its check
// against a run's figures. The README's budget table is this one.

import type { ScaleReport } from "./run.ts";

export interface BudgetRow {
  what: string;
  limit: string;
  measured: string;
  ok: boolean;
}

const fixed = (value: number, digits = 3) => Number(value.toFixed(digits)).toString();

export function checkBudget(report: ScaleReport): BudgetRow[] {
  const phase = (name: string) => {
    const found = report.phases.find((p) => p.name.startsWith(name));
    if (!found) throw new Error(`no phase ${name} in the report`);
    return found;
  };
  const warm = phase("Gets and Paths again");
  const mix = phase("Get mix");
  const pairs = phase("Mount+Unmount");
  const idle = phase("idle");
  const rss = Math.max(...report.rssMb);
  const restart = report.restart;
  const spread = (restart.firstCalls.at(-1) ?? 0) - (restart.firstCalls[0] ?? 0);
  const jitterSeconds = report.options.cacheTtlSeconds;
  const errors = Object.values(report.errors).reduce((a, b) => a + b, 0);
  return [
    {
      what: "requests answered without an Err (the figures below count only then)",
      limit: "all",
      measured: errors === 0 ? "all" : `${errors} failed: ${Object.entries(report.errors).map(([key, n]) => `${key} ${n}`).join(", ")}`,
      ok: errors === 0,
    },
    {
      what: "API calls per Get or Path on a volume seen within the cache TTL",
      limit: "0",
      measured: `${warm.calls} calls for ${warm.ops} requests`,
      ok: warm.calls === 0,
    },
    {
      what: "API calls per Get over the mix (25 Gets per host, stale cache)",
      limit: "0.1",
      measured: `${fixed(mix.callsPerOp)} (worst host ${fixed(mix.worstHostPerOp)})`,
      ok: mix.callsPerOp <= 0.1 && mix.worstHostPerOp <= 0.1,
    },
    {
      what: "API calls per host per minute at idle, mounts held",
      limit: "1",
      measured: `${fixed(idle.callsPerOp)} (worst host ${fixed(idle.worstHostPerOp)})`,
      ok: idle.worstHostPerOp <= 1,
    },
    {
      what: "API calls per Mount+Unmount pair",
      limit: "2",
      measured: `${fixed(pairs.callsPerOp)} (worst host ${fixed(pairs.worstHostPerOp)})`,
      ok: pairs.worstHostPerOp <= 2,
    },
    {
      what: `RSS per instance with ${report.options.volumes} volumes`,
      limit: "60 MB",
      measured: `max ${fixed(rss, 1)} MB, mean ${fixed(report.rssMb.reduce((a, b) => a + b, 0) / report.rssMb.length, 1)} MB`,
      ok: rss <= 60,
    },
    {
      what: "first API calls after a cluster-wide restart spread over the jitter window",
      limit: `>= 25 % of ${jitterSeconds} s`,
      measured: `${fixed(spread, 2)} s from first to last host; busiest second: ${restart.peakHostsPerSecond} hosts, ${restart.peakCallsPerSecond} calls`,
      // Fewer than 4 hosts make no spread worth checking.
      ok: report.options.instances < 4 || spread >= 0.25 * jitterSeconds,
    },
    {
      what: "API calls per host after a cluster-wide restart (jitter window, engine List and 25 Gets included)",
      limit: "2",
      measured: `${fixed(restart.phase.calls / report.options.instances)} (the engine's List and Gets: ${restart.engineCalls} in all)`,
      ok: restart.phase.calls <= 2 * report.options.instances,
    },
  ];
}
