import { describe, expect, test } from "bun:test";
import { deadlineState, Expiry, withDeadline } from "../../../src/core/deadline.ts";
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

  test("one shared timer: it runs while deadlines are pending and stops once none are", async () => {
    const works = Array.from({ length: 100 }, () => deferred<number>());
    const guarded = works.map((work, i) => withDeadline(work.promise, 60_000, () => `op ${i}`));
    expect(deadlineState()).toEqual({ pending: 100, timerRunning: true });
    works.forEach((work, i) => work.resolve(i));
    expect(await Promise.all(guarded)).toEqual(works.map((_, i) => i));
    expect(deadlineState().pending).toBe(0);
    await sleep(80);
    expect(deadlineState()).toEqual({ pending: 0, timerRunning: false });
  });

  test("the message of a lazily named operation is built when it times out", async () => {
    let built = 0;
    const name = () => {
      built++;
      return "remove of volume \"w\"";
    };
    expect(await withDeadline(Promise.resolve(1), 1000, name)).toBe(1);
    expect(built).toBe(0);
    const error = await expectPluginError(withDeadline(new Promise<never>(() => {}), 20, name, "w"), "TIMEOUT");
    expect(built).toBe(1);
    expect(error.message).toBe('remove of volume "w" did not finish within 20 ms');
  });

  test("the deadline's expiry throws the TIMEOUT error once it passed, and nothing before", async () => {
    const expiry = new Expiry();
    const late = withDeadline(new Promise<never>(() => {}), 20, "op", undefined, expiry);
    expect(() => expiry.throwIfExpired()).not.toThrow();
    const error = await expectPluginError(late, "TIMEOUT");
    expect(() => expiry.throwIfExpired()).toThrow(error);
  });
});
