import { messageOf } from "./errors.ts";
import type { Backend, ProbeResult } from "./types.ts";

/** A dependency as health and status report it. Times are ISO 8601. */
export interface DependencyHealth extends ProbeResult {
  checkedAt: string | undefined;
  latencyMs: number | undefined;
  lastError: { message: string; at: string } | undefined;
}

export interface Dependency {
  name: string;
  probe(): Promise<ProbeResult>;
  /** Answers younger than this are reused: health polling must not become a probe storm. */
  maxAgeMs: number;
}

export type OverallHealth = "ok" | "degraded" | "down";

export interface HealthReport {
  status: OverallHealth;
  dependencies: Record<string, DependencyHealth>;
}

/** How long a health request waits for a fresh probe before answering with the last one. */
const ANSWER_BUDGET_MS = 1000;

interface Slot {
  dep: Dependency;
  current: DependencyHealth;
  /** Epoch ms of the last finished probe; 0 before the first. */
  finishedAt: number;
  inFlight: Promise<void> | undefined;
}

/**
 * Health per dependency, probed at most one at a time each, cached, and answered within a
 * bound: a health check that waited on a frozen mount or a dead API would itself hang the
 * monitoring that polls it. Transitions are reported once each way (`onChange`), so a
 * wrong password is logged once, not on every poll, and its repair is logged too.
 */
export class HealthTracker {
  private readonly slots: Slot[];
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(
    dependencies: Dependency[],
    private readonly onChange: (name: string, now: DependencyHealth, before: DependencyHealth | undefined) => void = () => {},
  ) {
    this.slots = dependencies.map((dep) => ({
      dep,
      current: { ok: false, state: "unknown", detail: "not probed yet", checkedAt: undefined, latencyMs: undefined, lastError: undefined },
      finishedAt: 0,
      inFlight: undefined,
    }));
  }

  /** Probes now and then every `intervalMs`, so a broken dependency is logged without any request. */
  start(intervalMs: number): void {
    // A probe a request just made (the socket answers before start) is not repeated.
    const now = Date.now();
    for (const slot of this.slots) if (now - slot.finishedAt >= slot.dep.maxAgeMs) void this.refresh(slot);
    this.timer = setInterval(() => this.refreshAll(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Every dependency, fresh where a probe answers within the budget, else the last known. */
  async report(budgetMs = ANSWER_BUDGET_MS): Promise<HealthReport> {
    const now = Date.now();
    const waits = this.slots.map((slot) => (now - slot.finishedAt >= slot.dep.maxAgeMs ? this.refresh(slot) : Promise.resolve()));
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([Promise.all(waits), new Promise((resolve) => (timer = setTimeout(resolve, budgetMs)))]);
    clearTimeout(timer);
    const dependencies: Record<string, DependencyHealth> = {};
    for (const slot of this.slots) dependencies[slot.dep.name] = { ...slot.current };
    return { status: overall(dependencies), dependencies };
  }

  private refreshAll(): void {
    for (const slot of this.slots) void this.refresh(slot);
  }

  private refresh(slot: Slot): Promise<void> {
    slot.inFlight ??= (async () => {
      const started = performance.now();
      let result: ProbeResult;
      try {
        result = await slot.dep.probe();
      } catch (error) {
        result = { ok: false, state: "failing", detail: messageOf(error) };
      }
      const at = new Date().toISOString();
      const before = slot.finishedAt === 0 ? undefined : slot.current;
      slot.current = {
        ...result,
        checkedAt: at,
        latencyMs: Math.round(performance.now() - started),
        lastError: result.ok ? slot.current.lastError : { message: result.detail, at },
      };
      slot.finishedAt = Date.now();
      slot.inFlight = undefined;
      if (before === undefined ? !result.ok : before.ok !== result.ok || before.state !== result.state) this.onChange(slot.dep.name, slot.current, before);
    })();
    return slot.inFlight;
  }
}

/** The mount decides whether volumes work at all; the API only whether they can be created or removed. */
function overall(dependencies: Record<string, DependencyHealth>): OverallHealth {
  if (dependencies.mount && !dependencies.mount.ok) return "down";
  return Object.values(dependencies).every((dep) => dep.ok) ? "ok" : "degraded";
}

/** The dependencies of a backend: its storage mount, and its management API when it has one. */
export function backendDependencies(backend: Backend): Dependency[] {
  const deps: Dependency[] = [
    {
      name: "mount",
      maxAgeMs: 2000,
      async probe() {
        const health = await backend.health();
        return { ok: health.state === "live", state: health.state, detail: health.detail };
      },
    },
  ];
  const checkApi = backend.checkApi?.bind(backend);
  if (checkApi) deps.push({ name: "api", maxAgeMs: 5000, probe: checkApi });
  return deps;
}
