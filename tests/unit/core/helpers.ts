import { expect } from "bun:test";
import { type ErrorCode, PluginError } from "../../../src/core/errors.ts";

/** Awaits `work`, which must reject with a PluginError of `code`; returns the error. */
export async function expectPluginError(work: Promise<unknown> | (() => unknown), code: ErrorCode): Promise<PluginError> {
  let outcome: { ok: true; value: unknown } | { ok: false; error: unknown };
  try {
    const value = typeof work === "function" ? await work() : await work;
    outcome = { ok: true, value };
  } catch (error) {
    outcome = { ok: false, error };
  }
  if (outcome.ok) {
    throw new Error(`expected a PluginError ${code}, but the operation succeeded with ${JSON.stringify(outcome.value)}`);
  }
  const error = outcome.error;
  if (!(error instanceof PluginError)) {
    throw new Error(`expected a PluginError ${code}, got ${String(error)}`);
  }
  expect(error.code).toBe(code);
  return error;
}

export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Lets every pending promise callback run (several macrotask turns). */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await sleep(0);
}
