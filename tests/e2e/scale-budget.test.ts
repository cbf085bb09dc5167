// The API cost budget per host, checked on a small cluster of the compiled binary:
// bench/scale with 8 instances, 20 volumes and a 10 s idle phase. Fails when any row of
// the budget (README, "Several hosts: the Quobyte API") is broken.

import { expect, test } from "bun:test";
import { DEFAULT_SCALE, formatReport, runScale } from "../../bench/scale/run.ts";

test("bench/scale, 8 instances: every budget row holds", async () => {
  const report = await runScale({ ...DEFAULT_SCALE, instances: 8, volumes: 20, idleSeconds: 10, cacheTtlSeconds: 3 });
  console.log(formatReport(report));
  expect(report.budget.filter((row) => !row.ok)).toEqual([]);
  // The phases really ran: volumes made, Gets answered, mounts held through the idle phase.
  expect(report.phases.find((p) => p.name.startsWith("create"))?.ops).toBe(20);
  expect(report.phases.find((p) => p.name.startsWith("Get mix"))?.ops).toBe(200);
  expect(report.restart.firstCalls).toHaveLength(8);
}, 120_000);
