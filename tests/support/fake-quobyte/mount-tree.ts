/**
 * Optional mount tree: volumes materialised as directories of a temp dir, standing in
 * for the Quobyte client mount. Best effort: filesystem errors are recorded, not thrown.
 */
import { mkdirSync, rmSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import type { FakeMountTreeLayout } from "./types.ts";

interface TreeVolume {
  uuid: string;
  name: string;
}

export class MountTree {
  private readonly timers = new Map<string, ReturnType<typeof setTimeout>>();
  readonly errors: string[] = [];

  constructor(
    readonly root: string,
    private readonly layout: FakeMountTreeLayout,
    private readonly delayMs: number,
  ) {}

  /** The directory through which the volume's content is reached. */
  pathOf(v: TreeVolume): string {
    return join(this.root, this.layout === "uuid" ? v.uuid : v.name);
  }

  /** Materialise after the delay; with delay 0 synchronously, before returning. */
  schedule(v: TreeVolume): void {
    if (!Number.isFinite(this.delayMs)) return; // never appears
    if (this.delayMs <= 0) {
      this.materialise(v);
      return;
    }
    const timer = setTimeout(() => {
      this.timers.delete(v.uuid);
      this.materialise(v);
    }, this.delayMs);
    this.timers.set(v.uuid, timer);
  }

  /** Cancel a pending materialisation and remove the volume's entries (recursively). */
  remove(v: TreeVolume, nameStillUsed: boolean): void {
    const timer = this.timers.get(v.uuid);
    if (timer !== undefined) {
      clearTimeout(timer);
      this.timers.delete(v.uuid);
    }
    if (this.layout !== "name") this.rm(join(this.root, v.uuid));
    if (this.layout !== "uuid" && !nameStillUsed) this.rm(join(this.root, v.name));
  }

  cancelAll(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  private materialise(v: TreeVolume): void {
    try {
      if (this.layout === "uuid") {
        mkdirSync(join(this.root, v.uuid), { recursive: true });
        return;
      }
      mkdirSync(join(this.root, v.name), { recursive: true });
      if (this.layout === "both") symlinkSync(v.name, join(this.root, v.uuid));
    } catch (e) {
      this.errors.push(`materialise ${v.name}: ${String(e)}`);
    }
  }

  private rm(path: string): void {
    try {
      rmSync(path, { recursive: true, force: true });
    } catch (e) {
      this.errors.push(`remove ${path}: ${String(e)}`);
    }
  }
}
