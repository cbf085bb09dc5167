import { expect, test } from "bun:test";
import { Metrics } from "../../../src/protocol/metrics.ts";

const gauges = { volumes: 3, activeMounts: 1, storageLive: true };
const linesOf = (text: string) => text.trimEnd().split("\n");

test("counters per endpoint and outcome, errors per code, gauges", () => {
  const metrics = new Metrics();
  metrics.observe("VolumeDriver.Get", 0.001);
  metrics.observe("VolumeDriver.Get", 0.002, "VOLUME_NOT_FOUND");
  metrics.observe("VolumeDriver.Get", 0.003);
  metrics.observe("VolumeDriver.Remove", 0.004, "VOLUME_IN_USE");
  metrics.observe("VolumeDriver.Mount", 0.004, "VOLUME_NOT_FOUND");
  const lines = linesOf(metrics.render(gauges));
  expect(lines).toContain('dqp_requests_total{endpoint="VolumeDriver.Get",outcome="ok"} 2');
  expect(lines).toContain('dqp_requests_total{endpoint="VolumeDriver.Get",outcome="error"} 1');
  expect(lines).toContain('dqp_requests_total{endpoint="VolumeDriver.Remove",outcome="error"} 1');
  expect(lines.filter((l) => l.startsWith('dqp_requests_total{endpoint="VolumeDriver.Remove",outcome="ok"'))).toEqual([]);
  expect(lines).toContain('dqp_errors_total{code="VOLUME_NOT_FOUND"} 2');
  expect(lines).toContain('dqp_errors_total{code="VOLUME_IN_USE"} 1');
  expect(lines).toContain("dqp_volumes 3");
  expect(lines).toContain("dqp_active_mounts 1");
  expect(lines).toContain("dqp_storage_up 1");
});

test("histogram buckets are cumulative, bounds inclusive, slow requests only in +Inf", () => {
  const metrics = new Metrics();
  for (const seconds of [0.0001, 0.0005, 0.0006, 0.001, 0.02, 0.02, 31, 100]) metrics.observe("VolumeDriver.Mount", seconds);
  const bucket = (le: string) =>
    Number(
      linesOf(metrics.render(gauges))
        .find((l) => l.startsWith(`dqp_request_duration_seconds_bucket{endpoint="VolumeDriver.Mount",le="${le}"}`))
        ?.split(" ")[1],
    );
  expect(bucket("0.0005")).toBe(2);
  expect(bucket("0.001")).toBe(4);
  expect(bucket("0.0025")).toBe(4);
  expect(bucket("0.025")).toBe(6);
  expect(bucket("30")).toBe(6);
  expect(bucket("+Inf")).toBe(8);
  const text = metrics.render(gauges);
  expect(text).toContain('dqp_request_duration_seconds_count{endpoint="VolumeDriver.Mount"} 8');
  const sum = Number(/dqp_request_duration_seconds_sum\{endpoint="VolumeDriver.Mount"\} (\S+)/.exec(text)?.[1]);
  expect(sum).toBeCloseTo(131.0422, 6);
});
