import { describe, expect, test } from "bun:test";
import { IdleCollector } from "../../../src/system/idle-collector.ts";

/** A collector over a hand-moved request count and clock; counts its collections. */
function rig(minGapMs = 10_000) {
  const state = { requests: 0, now: 0, collections: 0 };
  const collector = new IdleCollector({
    activity: () => state.requests,
    minGapMs,
    collect: () => state.collections++,
    now: () => state.now,
  });
  /** One tick, `ms` after the last one. */
  const tick = (ms = 1000) => {
    state.now += ms;
    collector.tick();
  };
  return { state, collector, tick };
}

describe("IdleCollector", () => {
  test("collects once after a burst, at the first tick without a request, and not again while idle", () => {
    const { state, tick } = rig();
    tick(); // the start's own garbage (the index load): quiet from the first tick
    expect(state.collections).toBe(1);
    state.now += 20_000;
    for (let i = 0; i < 5; i++) {
      state.requests += 100;
      tick();
    }
    expect(state.collections).toBe(1);
    tick();
    expect(state.collections).toBe(2);
    for (let i = 0; i < 20; i++) tick();
    expect(state.collections).toBe(2);
  });

  test("a trickle of requests is collected at most once per minimum gap", () => {
    const { state, tick } = rig(10_000);
    // One request every other tick for 60 s: quiet ticks alternate with busy ones.
    for (let second = 0; second < 60; second++) {
      if (second % 2 === 0) state.requests++;
      tick();
    }
    expect(state.collections).toBeGreaterThanOrEqual(5);
    expect(state.collections).toBeLessThanOrEqual(7);
  });

  test("the timer starts, ticks and stops without holding the process", async () => {
    let requests = 0;
    let collections = 0;
    const collector = new IdleCollector({ activity: () => requests, intervalMs: 5, minGapMs: 0, collect: () => collections++ }).start();
    await Bun.sleep(50);
    expect(collections).toBe(1);
    requests++;
    const deadline = performance.now() + 2000;
    while (collections < 2 && performance.now() < deadline) await Bun.sleep(5);
    expect(collections).toBe(2);
    collector.stop();
    requests++;
    await Bun.sleep(50);
    expect(collections).toBe(2);
  });
});
