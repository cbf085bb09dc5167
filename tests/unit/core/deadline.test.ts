import { describe, expect, test } from "bun:test";
import { withDeadline } from "../../../src/core/deadline.ts";
import { PluginError } from "../../../src/core/errors.ts";
import { deferred, expectPluginError, sleep } from "./helpers.ts";

describe("withDeadline", () => {
  test("rejects with a TIMEOUT PluginError naming the operation and volume once the deadline passes", async () => {
    const never = new Promise<string>(() => {});
    const start = performance.now();
    const error = await expectPluginError(withDeadline(never, 40, "mount of volume \"v\"", "v"), "TIMEOUT");
    const elapsed = performance.now() - start;
    expect(elapsed).toBeGreaterThanOrEqual(35);
    expect(elapsed).toBeLessThan(2000);
    expect(error.message).toContain('mount of volume "v"');
    expect(error.message).toContain("40 ms");
    expect(error.volume).toBe("v");
  });

  test("does not time out before the deadline", async () => {
    const work = deferred<string>();
    let settled = false;
    const guarded = withDeadline(work.promise, 200, "op").finally(() => {
      settled = true;
    });
    await sleep(50);
    expect(settled).toBe(false);
    work.resolve("in time");
    expect(await guarded).toBe("in time");
  });

  test("passes a result through unchanged", async () => {
    const value = { answer: 42 };
    expect(await withDeadline(Promise.resolve(value), 1000, "op")).toBe(value);
  });

  test("passes a rejection through unchanged", async () => {
    const error = new PluginError("BACKEND_FAILED", "disk on fire");
    await expect(withDeadline(Promise.reject(error), 1000, "op")).rejects.toBe(error);
  });

  test("a deadline of 0 (or a non-positive or non-finite one) disables it", async () => {
    for (const ms of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      const slow = sleep(60).then(() => "slow but fine");
      expect(await withDeadline(slow, ms, "op")).toBe("slow but fine");
    }
  });

  test("a late result after the deadline is ignored, not thrown", async () => {
    const work = deferred<string>();
    await expectPluginError(withDeadline(work.promise, 10, "op"), "TIMEOUT");
    work.reject(new Error("late failure"));
    await sleep(10);
  });
});
