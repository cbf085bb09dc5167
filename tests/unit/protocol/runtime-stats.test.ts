import { afterEach, beforeEach, expect, test } from "bun:test";
import { type AppHarness, engineRequest, makeAppHarness } from "./harness.ts";
import type { RuntimeStats } from "../../../src/protocol/runtime-stats.ts";

let h: AppHarness;
beforeEach(async () => {
  h = await makeAppHarness();
});
afterEach(async () => {
  await h.cleanup();
});

async function runtime(): Promise<RuntimeStats> {
  const reply = await h.app.request("/debug/runtime");
  expect(reply.status).toBe(200);
  return (await reply.json()) as RuntimeStats;
}

test("GET /debug/runtime reports heap, object counts and pending deadlines", async () => {
  const stats = await runtime();
  for (const key of ["heapBytes", "objects", "maps", "sets", "promises", "timers", "pendingDeadlines", "rssBytes"]) {
    expect({ key, type: typeof stats[key as keyof RuntimeStats] }).toEqual({ key, type: "number" });
  }
  expect(stats.heapBytes).toBeGreaterThan(0);
  expect(stats.maps).toBeGreaterThan(0);
  expect(stats.pendingDeadlines).toBe(0);
});

test("a thousand container starts and stops leave no maps, promises or deadlines behind", async () => {
  expect((await h.app.request("/VolumeDriver.Create", engineRequest({ Name: "v", Opts: {} }))).status).toBe(200);
  const cycle = async (i: number) => {
    const id = i.toString(16).padStart(64, "0");
    for (const method of ["Get", "Mount", "Get", "Unmount"]) {
      const reply = await h.app.request(`/VolumeDriver.${method}`, engineRequest({ Name: "v", ID: id }));
      expect(reply.status).toBe(200);
    }
  };
  for (let i = 0; i < 100; i++) await cycle(i);
  const before = await runtime();
  for (let i = 100; i < 1100; i++) await cycle(i);
  const after = await runtime();
  expect(after.pendingDeadlines).toBe(0);
  expect(after.maps).toBeLessThanOrEqual(before.maps + 2);
  expect(after.promises).toBeLessThanOrEqual(before.promises + 20);
  expect(after.timers).toBeLessThanOrEqual(before.timers + 1);
});
