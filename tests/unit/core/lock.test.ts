import { describe, expect, test } from "bun:test";
import { KeyedLock } from "../../../src/core/lock.ts";
import { deferred, settle } from "./helpers.ts";

describe("KeyedLock", () => {
  test("runs tasks on one key one at a time, in arrival order", async () => {
    const lock = new KeyedLock();
    const events: string[] = [];
    const gates = [deferred(), deferred(), deferred()];
    const runs = gates.map((gate, i) =>
      lock.run("k", async () => {
        events.push(`start ${i}`);
        await gate.promise;
        events.push(`end ${i}`);
        return i;
      }),
    );
    await settle();
    expect(events).toEqual(["start 0"]);
    // Releasing a later task first must not let it overtake.
    gates[2]?.resolve();
    gates[1]?.resolve();
    await settle();
    expect(events).toEqual(["start 0"]);
    gates[0]?.resolve();
    expect(await Promise.all(runs)).toEqual([0, 1, 2]);
    expect(events).toEqual(["start 0", "end 0", "start 1", "end 1", "start 2", "end 2"]);
  });

  test("runs tasks on different keys concurrently", async () => {
    const lock = new KeyedLock();
    const blockA = deferred();
    let aDone = false;
    const a = lock.run("a", async () => {
      await blockA.promise;
      aDone = true;
    });
    const b = await lock.run("b", async () => "b ran");
    expect(b).toBe("b ran");
    expect(aDone).toBe(false);
    expect(lock.size).toBe(1);
    blockA.resolve();
    await a;
    expect(aDone).toBe(true);
  });

  test("counts held or awaited keys and forgets a key once nobody holds or waits for it", async () => {
    const lock = new KeyedLock();
    expect(lock.size).toBe(0);
    const gate = deferred();
    const first = lock.run("x", () => gate.promise);
    const second = lock.run("x", async () => {});
    const other = lock.run("y", () => gate.promise);
    expect(lock.size).toBe(2);
    gate.resolve();
    await Promise.all([first, second, other]);
    expect(lock.size).toBe(0);
    for (let i = 0; i < 50; i++) await lock.run(`key-${i}`, async () => {});
    expect(lock.size).toBe(0);
  });

  test("a throwing task passes its error on and releases the lock", async () => {
    const lock = new KeyedLock();
    const boom = new Error("boom");
    const failing = lock.run("k", async () => {
      throw boom;
    });
    const next = lock.run("k", async () => "next ran");
    await expect(failing).rejects.toBe(boom);
    expect(await next).toBe("next ran");
    expect(lock.size).toBe(0);
  });

  test("a task that throws synchronously also releases the lock", async () => {
    const lock = new KeyedLock();
    const failing = lock.run("k", (() => {
      throw new Error("sync");
    }) as () => Promise<never>);
    await expect(failing).rejects.toThrow("sync");
    expect(await lock.run("k", async () => 1)).toBe(1);
    expect(lock.size).toBe(0);
  });

  test("a task's result passes through unchanged", async () => {
    const lock = new KeyedLock();
    const value = { id: 1 };
    expect(await lock.run("k", async () => value)).toBe(value);
  });
});
