import { describe, expect, test } from "bun:test";
import { MAX_NAME_BYTES, validateVolumeName } from "../../../src/core/names.ts";
import { expectPluginError } from "./helpers.ts";

const bytes = (s: string): number => new TextEncoder().encode(s).length;

describe("validateVolumeName", () => {
  test("accepts ordinary, unicode and engine-generated names and returns them unchanged", () => {
    for (const name of [
      "a",
      "my-volume_1.data",
      "UPPER",
      "a.b..c",
      "x-",
      "données-日本語-🐳",
      "a b",
      "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
      "back\\slash",
      "colon:name",
    ]) {
      expect(validateVolumeName(name)).toBe(name);
    }
  });

  test("the limit is NAME_MAX, 255 bytes of UTF-8, not 255 characters", async () => {
    expect(MAX_NAME_BYTES).toBe(255);
    const ok = [`${"a".repeat(255)}`, `${"é".repeat(127)}a`, `${"🐳".repeat(63)}abc`, `${"日".repeat(85)}`];
    for (const name of ok) {
      expect(bytes(name)).toBe(255);
      expect(validateVolumeName(name)).toBe(name);
    }
    const tooLong = ["a".repeat(256), "é".repeat(128), `${"🐳".repeat(63)}abcd`, "日".repeat(86)];
    for (const name of tooLong) {
      expect(bytes(name)).toBeGreaterThan(255);
      const error = await expectPluginError(() => validateVolumeName(name), "INVALID_NAME");
      expect(error.message).toContain("255");
    }
    // 128 two-byte characters are only 128 UTF-16 units: the check must count bytes.
    expect("é".repeat(128).length).toBeLessThan(255);
  });

  test("refuses path tricks", async () => {
    for (const name of [".", "..", "a/b", "../x", "/abs", "x/", "/", "a/../b"]) {
      await expectPluginError(() => validateVolumeName(name), "INVALID_NAME");
    }
  });

  test("refuses names starting with a dot, which are reserved for the plugin's own entries", async () => {
    for (const name of [".hidden", ".docker-quobyte-plugin", ".tmp-1-x", "..."]) {
      const error = await expectPluginError(() => validateVolumeName(name), "INVALID_NAME");
      expect(error.message).toContain('"."');
    }
  });

  test("refuses control characters anywhere", async () => {
    for (const name of ["x\u0000y", "x\ny", "x\ry", "\tx", "x\u001b[31m", "x\u007f", "end\n"]) {
      const error = await expectPluginError(() => validateVolumeName(name), "INVALID_NAME");
      expect(error.message).toContain("control characters");
    }
  });

  test("refuses the empty name and anything that is not a string", async () => {
    for (const name of ["", 1, null, undefined, true, {}, ["a"], Symbol("s")]) {
      await expectPluginError(() => validateVolumeName(name), "INVALID_NAME");
    }
  });

  test("shortens very long names in the message", async () => {
    const error = await expectPluginError(() => validateVolumeName("z".repeat(1000)), "INVALID_NAME");
    expect(error.message).toContain("...");
    expect(error.message.length).toBeLessThan(300);
    expect(error.message).toContain("1000 bytes");
  });
});
