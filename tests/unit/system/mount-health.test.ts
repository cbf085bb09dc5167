// MountMonitor's admission rule: no verdict reached before a request arrived admits it,
// and requests that arrived before a probe started share it (single flight).

import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type MountHealth, MountMonitor } from "../../../src/system/mount-health.ts";

/** A monitor whose probes the test answers by hand, and counts. */
class PacedMonitor extends MountMonitor {
  probes = 0;
  private answers: ((health: MountHealth) => void)[] = [];

  constructor(timeoutMs = 2000) {
    super("/nonexistent-root", "none", timeoutMs);
  }

  protected override probe(): Promise<MountHealth> {
    this.probes++;
    return new Promise((resolve) => this.answers.push(resolve));
  }

  /** Answers the oldest open probe. */
  answer(state: MountHealth["state"]): void {
    const resolve = this.answers.shift();
    if (!resolve) throw new Error("no probe is open");
    resolve({ state, detail: state, checkedAt: Date.now() });
  }
}

const tick = () => Bun.sleep(1);

describe("MountMonitor admits a request only on a probe that started after it arrived", () => {
  test("100 requests that arrived before the probe share it", async () => {
    const monitor = new PacedMonitor();
    const arrivedAt = performance.now();
    const checks = Array.from({ length: 100 }, () => monitor.check(arrivedAt));
    await tick();
    monitor.answer("live");
    const verdicts = await Promise.all(checks);
    expect(verdicts.every((health) => health.state === "live")).toBe(true);
    expect(monitor.probes).toBe(1);
  });

  test("a live verdict reached before the request arrived is not reused", async () => {
    const monitor = new PacedMonitor();
    const first = monitor.check();
    monitor.answer("live");
    expect((await first).state).toBe("live");
    await tick();
    const second = monitor.check();
    await tick();
    expect(monitor.probes).toBe(2);
    monitor.answer("dead");
    expect((await second).state).toBe("dead");
  });

  test("requests arriving while an older probe runs wait for one new probe, not the old verdict", async () => {
    const monitor = new PacedMonitor();
    const early = monitor.check();
    await tick();
    const late = Array.from({ length: 100 }, () => monitor.check());
    monitor.answer("live");
    expect((await early).state).toBe("live");
    await tick();
    expect(monitor.probes).toBe(2);
    monitor.answer("dead");
    const verdicts = await Promise.all(late);
    expect(verdicts.every((health) => health.state === "dead")).toBe(true);
  });

  test("a probe stuck past its deadline answers hung, and at once for later requests", async () => {
    const monitor = new PacedMonitor(100);
    const started = performance.now();
    expect((await monitor.check()).state).toBe("hung");
    expect(performance.now() - started).toBeGreaterThanOrEqual(95);
    const again = performance.now();
    expect((await monitor.check()).state).toBe("hung");
    expect(performance.now() - again).toBeLessThan(50);
    expect(monitor.probes).toBe(1);
    expect(monitor.lastHealth?.state).toBe("hung");
    monitor.answer("live");
    await tick();
    expect((await Promise.race([monitor.check(), Bun.sleep(20).then(() => "waiting")])) as unknown).toBe("waiting");
    expect(monitor.probes).toBe(2);
  });
});

describe("MountMonitor on a local filesystem probes synchronously", () => {
  /** A monitor on a real directory that counts the asynchronous probes it starts. */
  class CountingMonitor extends MountMonitor {
    asyncProbes = 0;
    protected override probe(): Promise<MountHealth> {
      this.asyncProbes++;
      return super.probe();
    }
  }

  const withRoot = async (run: (root: string) => Promise<void>) => {
    const root = mkdtempSync(join(tmpdir(), "dqp-local-probe-"));
    try {
      await run(root);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  };

  test("each check looks at the directory now: a root removed since the last check is missing at once", async () => {
    await withRoot(async (root) => {
      const monitor = new CountingMonitor(root, "none", 2000);
      monitor.markLocal(statSync(root).dev);
      expect((await monitor.check()).state).toBe("live");
      expect((await monitor.check()).state).toBe("live");
      rmSync(root, { recursive: true });
      expect((await monitor.check()).state).toBe("missing");
      expect(monitor.asyncProbes).toBe(0);
    });
  });

  test("a path that now resolves to another device goes back to the asynchronous probe with its deadline", async () => {
    await withRoot(async (root) => {
      const monitor = new CountingMonitor(root, "none", 2000);
      // As if something had been mounted over the root since start.
      monitor.markLocal(statSync(root).dev + 1);
      expect((await monitor.check()).state).toBe("live");
      expect((await monitor.check()).state).toBe("live");
      expect(monitor.asyncProbes).toBe(2);
    });
  });

  test("a mount check other than none keeps the asynchronous probe (it reads the mount table)", async () => {
    await withRoot(async (root) => {
      const monitor = new CountingMonitor(root, "mountpoint", 2000);
      monitor.markLocal(statSync(root).dev);
      expect((await monitor.check()).state).toBe("not-mounted");
      expect(monitor.asyncProbes).toBe(1);
    });
  });
});

describe("MountMonitor.confirmsLive: a Mount's lstat of its directory as the probe of a local root", () => {
  test("a real directory on the root's device confirms the root live; a symlink, a missing entry or another device does not", async () => {
    const root = mkdtempSync(join(tmpdir(), "dqp-confirm-"));
    try {
      mkdirSync(join(root, "vol"));
      symlinkSync(join(root, "vol"), join(root, "link"));
      const monitor = new MountMonitor(root, "none", 2000);
      expect(monitor.confirmsLive(join(root, "vol"))).toBe(false); // not declared local yet
      monitor.markLocal(statSync(root).dev);
      expect(monitor.confirmsLive(join(root, "vol"))).toBe(true);
      expect(monitor.lastHealth?.state).toBe("live");
      expect(monitor.confirmsLive(join(root, "link"))).toBe(false);
      expect(monitor.confirmsLive(join(root, "missing"))).toBe(false);
      // /proc is another filesystem: a directory there proves nothing about the root.
      expect(monitor.confirmsLive("/proc")).toBe(false);
      rmSync(root, { recursive: true });
      expect(monitor.confirmsLive(join(root, "vol"))).toBe(false);
      expect((await monitor.check()).state).toBe("missing");
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
