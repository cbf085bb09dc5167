import { describe, expect, test } from "bun:test";
import { asPosixIntent, type PosixIntent, planReplay } from "../../../src/backends/posix/intents.ts";
import type { PosixVolumeMeta } from "../../../src/backends/posix/volume-meta.ts";

const T0 = "2024-01-01T00:00:00.000Z";
const T1 = "2024-01-01T00:00:01.000Z";
const T2 = "2024-01-01T00:00:02.000Z";

function meta(createdAt: string, options: Record<string, string> = {}): PosixVolumeMeta {
  return { version: 1, createdAt, options, state: "ready" };
}

const create = (name: string, createdAt: string, options: Record<string, string> = {}): PosixIntent => ({ op: "create", name, meta: meta(createdAt, options) });
const remove = (name: string, createdAt: string): PosixIntent => ({ op: "remove", name, createdAt });
const cancel = (name: string, of: "create" | "remove", createdAt: string): PosixIntent => ({ op: "cancel", name, of, createdAt });
const records = (entries: Record<string, string> = {}): ReadonlyMap<string, string> => new Map(Object.entries(entries));

describe("planReplay (per name, the last intent not cancelled decides; only that final state is made)", () => {
  const plan = planReplay;

  test("a Create last, without its record (written by a checkpoint that never ran), is redone with its meta", () => {
    expect(plan([create("x", T1, { mode: "0750" })], records())).toEqual([{ kind: "redo-create", name: "x", meta: meta(T1, { mode: "0750" }) }]);
  });

  test("a Create last, with its record, needs its directory ensured", () => {
    expect(plan([create("x", T1)], records({ x: T1 }))).toEqual([{ kind: "ensure-directory", name: "x", meta: meta(T1) }]);
  });

  test("a Create last over the record of a life the log removed: that Remove never reached the disk and is finished first", () => {
    expect(plan([create("x", T0), remove("x", T0), create("x", T1)], records({ x: T0 }))).toEqual([
      { kind: "finish-remove", name: "x" },
      { kind: "redo-create", name: "x", meta: meta(T1) },
    ]);
    expect(plan([remove("x", T0), create("x", T1)], records({ x: T0 }))).toEqual([
      { kind: "finish-remove", name: "x" },
      { kind: "redo-create", name: "x", meta: meta(T1) },
    ]);
  });

  test("a record of a life no intent names (one that began after them) is left alone, Create or Remove last", () => {
    expect(plan([create("x", T1)], records({ x: T2 }))).toEqual([]);
    expect(plan([create("x", T0), remove("x", T0)], records({ x: T2 }))).toEqual([]);
  });

  test("a Remove last is finished whether its record is still there or was never written", () => {
    expect(plan([create("y", T1), remove("y", T1)], records({ y: T1 }))).toEqual([{ kind: "finish-remove", name: "y" }]);
    expect(plan([create("y", T1), remove("y", T1)], records())).toEqual([{ kind: "finish-remove", name: "y" }]);
    expect(plan([remove("y", T1)], records())).toEqual([{ kind: "finish-remove", name: "y" }]);
  });

  test("a Remove last of another life than the record's leaves the record and its volume alone", () => {
    expect(plan([remove("y", T0)], records({ y: T1 }))).toEqual([]);
  });

  const lives = [create("x", T1), remove("x", T1), create("x", T2)];

  test("[create t, remove t, create t2]: t's Remove runs only while t's record says it never reached the disk", () => {
    expect(plan(lives, records({ x: T2 }))).toEqual([{ kind: "ensure-directory", name: "x", meta: meta(T2) }]);
    expect(plan(lives, records({ x: T1 }))).toEqual([
      { kind: "finish-remove", name: "x" },
      { kind: "redo-create", name: "x", meta: meta(T2) },
    ]);
    // No record: t's Remove was done before t2 was logged; t2's directory may hold its data.
    expect(plan(lives, records())).toEqual([{ kind: "redo-create", name: "x", meta: meta(T2) }]);
  });

  test("[create t, remove t, create t2, remove t2]: the name ends removed, whichever record survived", () => {
    expect(plan([...lives, remove("x", T2)], records())).toEqual([{ kind: "finish-remove", name: "x" }]);
    expect(plan([...lives, remove("x", T2)], records({ x: T1 }))).toEqual([{ kind: "finish-remove", name: "x" }]);
    expect(plan([...lives, remove("x", T2)], records({ x: T2 }))).toEqual([{ kind: "finish-remove", name: "x" }]);
  });

  test("a cancelled Create whose record stayed has its record dropped; without the record nothing happens", () => {
    const intents = [create("x", T1), cancel("x", "create", T1)];
    expect(plan(intents, records({ x: T1 }))).toEqual([{ kind: "drop-record", name: "x" }]);
    expect(plan(intents, records())).toEqual([]);
  });

  test("a cancelled Create's record counts as none for the name's later intents", () => {
    const failed = [create("x", T1), cancel("x", "create", T1)];
    expect(plan([...failed, create("x", T2)], records({ x: T1 }))).toEqual([{ kind: "redo-create", name: "x", meta: meta(T2) }]);
    expect(plan([...failed, create("x", T2), remove("x", T2)], records({ x: T1 }))).toEqual([{ kind: "finish-remove", name: "x" }]);
  });

  test("a cancelled Remove is skipped: the volume stays", () => {
    expect(plan([create("x", T1), remove("x", T1), cancel("x", "remove", T1)], records({ x: T1 }))).toEqual([{ kind: "ensure-directory", name: "x", meta: meta(T1) }]);
    expect(plan([remove("x", T1), cancel("x", "remove", T1)], records({ x: T1 }))).toEqual([]);
  });

  test("a cancel applies to its own life only", () => {
    expect(plan([create("x", T1), cancel("x", "create", T0)], records())).toEqual([{ kind: "redo-create", name: "x", meta: meta(T1) }]);
    // A cancel of an earlier life's Remove does not cancel this life's.
    expect(plan([create("x", T1), remove("x", T1), cancel("x", "remove", T0)], records({ x: T1 }))).toEqual([{ kind: "finish-remove", name: "x" }]);
  });

  test("a Remove before a cancelled Create: finished while its record is there; without it, the cancelled Create's adopted data stays", () => {
    const intents = [remove("x", T1), create("x", T2), cancel("x", "create", T2)];
    expect(plan(intents, records({ x: T1 }))).toEqual([{ kind: "finish-remove", name: "x" }]);
    expect(plan(intents, records())).toEqual([]);
  });

  test("several names: one step each, in the order of their last intents", () => {
    const intents = [create("a", T1), create("b", T1), remove("a", T1), create("c", T1), create("d", T1)];
    expect(plan(intents, records({ b: T1, d: T1 }))).toEqual([
      { kind: "ensure-directory", name: "b", meta: meta(T1) },
      { kind: "finish-remove", name: "a" },
      { kind: "redo-create", name: "c", meta: meta(T1) },
      { kind: "ensure-directory", name: "d", meta: meta(T1) },
    ]);
  });

  test("no intents, no steps: records no intent names are left alone", () => {
    expect(plan([], records({ a: T1 }))).toEqual([]);
    expect(plan([create("x", T1)], records({ x: T1, other: T0 }))).toEqual([{ kind: "ensure-directory", name: "x", meta: meta(T1) }]);
  });
});

describe("asPosixIntent", () => {
  test("accepts each well-formed intent as it is", () => {
    for (const intent of [create("x", T1, { mode: "0750" }), remove("x", T1), cancel("x", "create", T1), cancel("x", "remove", T1)]) {
      expect(asPosixIntent(JSON.parse(JSON.stringify(intent)))).toEqual(intent);
    }
  });

  test("rejects malformed entries", () => {
    const malformed: unknown[] = [
      null,
      "create",
      42,
      [],
      // Missing or non-string name.
      { op: "create", meta: meta(T1) },
      { op: "remove", createdAt: T1 },
      { op: "remove", name: 7, createdAt: T1 },
      // Unknown or missing op.
      { op: "mount", name: "x", createdAt: T1 },
      { name: "x", createdAt: T1 },
      // A create's meta must be a "ready" record with createdAt and options.
      { op: "create", name: "x", meta: { ...meta(T1), state: "creating" } },
      { op: "create", name: "x", meta: { ...meta(T1), state: "removing" } },
      { op: "create", name: "x" },
      { op: "create", name: "x", meta: null },
      { op: "create", name: "x", meta: { version: 1, options: {}, state: "ready" } },
      { op: "create", name: "x", meta: { version: 1, createdAt: T1, state: "ready" } },
      { op: "create", name: "x", meta: { version: 1, createdAt: T1, options: null, state: "ready" } },
      // A remove names the life it ends.
      { op: "remove", name: "x" },
      { op: "remove", name: "x", createdAt: 5 },
      // A cancel says what it cancels, and which life.
      { op: "cancel", name: "x", createdAt: T1 },
      { op: "cancel", name: "x", of: "mount", createdAt: T1 },
      { op: "cancel", name: "x", of: "create" },
    ];
    for (const entry of malformed) expect({ entry, intent: asPosixIntent(entry) }).toEqual({ entry, intent: undefined });
  });
});
