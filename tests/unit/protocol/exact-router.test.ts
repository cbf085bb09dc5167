import { describe, expect, test } from "bun:test";
import { ExactRouter } from "../../../src/protocol/exact-router.ts";

describe("ExactRouter", () => {
  test("finds the handlers of one method on one path, in the order they were added, and nothing else", () => {
    const router = new ExactRouter<string>();
    router.add("POST", "/VolumeDriver.Get", "get");
    router.add("POST", "/VolumeDriver.Get", "get, second");
    router.add("GET", "/health", "health");
    expect(router.match("POST", "/VolumeDriver.Get")).toEqual([[["get", {}], ["get, second", {}]]]);
    expect(router.match("GET", "/health")).toEqual([[["health", {}]]]);
    for (const [method, path] of [
      ["GET", "/VolumeDriver.Get"],
      ["POST", "/VolumeDriver.Get/"],
      ["POST", "/VolumeDriver.Ge"],
      ["POST", "/volumedriver.get"],
      ["POST", "/health"],
      ["POST", ""],
    ] as const) {
      expect(router.match(method, path)).toEqual([[]]);
    }
  });

  test("refuses middleware and patterns when they are added, instead of routing them wrongly", () => {
    const router = new ExactRouter<string>();
    expect(() => router.add("ALL", "/x", "all")).toThrow(/one method on a fixed path/);
    expect(() => router.add("ALL", "*", "use")).toThrow(/one method on a fixed path/);
    expect(() => router.add("GET", "/volumes/:name", "param")).toThrow(/one method on a fixed path/);
    expect(() => router.add("GET", "/debug/*", "wildcard")).toThrow(/one method on a fixed path/);
  });
});
