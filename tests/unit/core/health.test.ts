import { describe, expect, test } from "bun:test";
import { type Dependency, HealthTracker } from "../../../src/core/health.ts";
import type { ProbeResult } from "../../../src/core/types.ts";

/** A dependency whose next answers the test decides; counts its probes. */
function scripted(name: string, maxAgeMs = 0): Dependency & { calls: number; answer: ProbeResult | "hang" } {
  const dep = {
    name,
    maxAgeMs,
    calls: 0,
    answer: { ok: true, state: "ok", detail: "fine" } as ProbeResult | "hang",
    probe(): Promise<ProbeResult> {
      dep.calls++;
      const answer = dep.answer;
      return answer === "hang" ? new Promise(() => {}) : Promise.resolve(answer);
    },
  };
  return dep;
}

describe("HealthTracker", () => {
  test("a probe that never answers: health answers within its budget, with one probe in flight", async () => {
    const mount = scripted("mount");
    mount.answer = "hang";
    const tracker = new HealthTracker([mount]);
    const reports = await Promise.all([tracker.report(50), tracker.report(50), tracker.report(50)]);
    expect(mount.calls).toBe(1);
    for (const report of reports) {
      expect(report.status).toBe("down");
      expect(report.dependencies.mount).toMatchObject({ ok: false, state: "unknown" });
    }
    await tracker.report(50);
    expect(mount.calls).toBe(1);
  });

  test("answers younger than maxAge are reused", async () => {
    const api = scripted("api", 60_000);
    const tracker = new HealthTracker([api]);
    await tracker.report();
    await tracker.report();
    expect(api.calls).toBe(1);
  });

  test("a failure is reported once, its repair once; the last error and its time stay", async () => {
    const mount = scripted("mount");
    const api = scripted("api");
    const changes: string[] = [];
    const tracker = new HealthTracker([mount, api], (name, now) => changes.push(`${name}:${now.state}`));
    expect((await tracker.report()).status).toBe("ok");
    api.answer = { ok: false, state: "unauthenticated", detail: "wrong password" };
    const degraded = await tracker.report();
    await tracker.report();
    expect(degraded.status).toBe("degraded");
    expect(degraded.dependencies.api?.lastError?.message).toBe("wrong password");
    api.answer = { ok: false, state: "unreachable", detail: "connection refused" };
    await tracker.report();
    api.answer = { ok: true, state: "ok", detail: "fine" };
    const repaired = await tracker.report();
    expect(repaired.status).toBe("ok");
    expect(repaired.dependencies.api?.lastError).toMatchObject({ message: "connection refused", at: expect.stringMatching(/^\d{4}-/) });
    mount.answer = { ok: false, state: "dead", detail: "ENOTCONN" };
    expect((await tracker.report()).status).toBe("down");
    expect(changes).toEqual(["api:unauthenticated", "api:unreachable", "api:ok", "mount:dead"]);
  });

  test("a probe that throws counts as failing with its message", async () => {
    const tracker = new HealthTracker([
      { name: "api", maxAgeMs: 0, probe: () => Promise.reject(new Error("boom")) },
    ]);
    expect((await tracker.report()).dependencies.api).toMatchObject({ ok: false, state: "failing", detail: "boom" });
  });
});
