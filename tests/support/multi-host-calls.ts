// Engine-shaped calls on a multi-host test's hosts, with the failing host's log in the
// error, and a poll that measures how long a condition took to hold.

import type { Host } from "./multi-host.ts";

/** The reply of a call that must succeed (an Err fails the test with the host's log). */
export async function ok(host: Host, method: string, body: unknown): Promise<Record<string, unknown>> {
  const reply = await host.call(method, body);
  const json = reply.json as Record<string, unknown> | undefined;
  if (reply.status !== 200 || json?.Err) {
    throw new Error(`${host.name} ${method} ${JSON.stringify(body)}: ${reply.status} ${reply.text}\n${host.plugin?.stderr().slice(-3000)}`);
  }
  return json ?? {};
}

/** The Err of a call that must fail. */
export async function err(host: Host, method: string, body: unknown): Promise<string> {
  const reply = await host.call(method, body);
  const text = (reply.json as { Err?: string } | undefined)?.Err;
  if (!text) throw new Error(`${host.name} ${method} ${JSON.stringify(body)} succeeded; expected an Err`);
  return text;
}

/** The names the host's List shows. */
export async function listed(host: Host): Promise<string[]> {
  const reply = (await ok(host, "VolumeDriver.List", {})) as { Volumes: { Name: string }[] };
  return reply.Volumes.map((v) => v.Name);
}

/** Seconds until `check` holds, polling every 100 ms; throws after `limitS`. */
export async function secondsUntil(check: () => Promise<boolean>, limitS: number): Promise<number> {
  const started = performance.now();
  for (;;) {
    if (await check()) return (performance.now() - started) / 1000;
    if (performance.now() - started > limitS * 1000) throw new Error(`not within ${limitS} s`);
    await Bun.sleep(100);
  }
}

export interface RemoveAfterKill {
  /** Seconds after the kill: the first refusal, the last refusal, the Remove that went through. */
  firstRefused: number;
  lastRefused: number;
  allowed: number;
}

/**
 * Sends Remove of `name` on `host` every 250 ms from `killedAt` (performance.now() of the
 * holder's SIGKILL) until it goes through; every refusal must name `holder`. Throws when
 * the first one is not a refusal or when it is still refused after `limitS`.
 */
export async function removeUntilAllowed(host: Host, name: string, holder: string, killedAt: number, limitS: number): Promise<RemoveAfterKill> {
  const since = () => (performance.now() - killedAt) / 1000;
  const first = await err(host, "VolumeDriver.Remove", { Name: name });
  if (!first.includes(holder)) throw new Error(`Remove of ${name} refused without naming ${holder}: ${first}`);
  const firstRefused = since();
  let lastRefused = firstRefused;
  for (;;) {
    const reply = await host.call("VolumeDriver.Remove", { Name: name });
    const at = since();
    const refusal = (reply.json as { Err?: string } | undefined)?.Err;
    if (!refusal) return { firstRefused, lastRefused, allowed: at };
    if (!refusal.includes(holder)) throw new Error(`Remove of ${name} refused without naming ${holder}: ${refusal}`);
    lastRefused = at;
    if (at > limitS) throw new Error(`Remove of ${name} still refused ${at.toFixed(1)} s after the kill`);
    await Bun.sleep(250);
  }
}
