import { messageOf } from "../../core/errors.ts";
import type { Logger } from "../../logging.ts";
import type { QuobyteApi, VolumeUsage } from "../../quobyte/api.ts";

/** Quota and usage answers older than this are refreshed in the background. */
const USAGE_TTL_MS = 30_000;
/** How long Get and List wait for a fresh API answer before using what they have. */
const API_BUDGET_MS = 250;

/**
 * Quota and usage of the tenants' volumes (getVolumeList), for Status and --list-all.
 * Get must stay fast and keep answering while the API is down, so a stale cache is
 * refreshed at most once at a time and waited for only briefly.
 */
export class UsageCache {
  private readonly usage = new Map<string, VolumeUsage>();
  private fetchedAt = 0;
  private refresh: Promise<void> | undefined;

  constructor(
    private readonly api: QuobyteApi,
    /** The tenants whose volumes to load (those resolved so far). */
    private readonly tenantIds: () => Iterable<string>,
    private readonly log: Logger,
  ) {}

  get(uuid: string): VolumeUsage | undefined {
    return this.usage.get(uuid);
  }

  forget(uuid: string): void {
    this.usage.delete(uuid);
  }

  volumes(): IterableIterator<VolumeUsage> {
    return this.usage.values();
  }

  /** Refreshes when stale, waiting at most API_BUDGET_MS for it. */
  async fresh(): Promise<void> {
    if (Date.now() - this.fetchedAt < USAGE_TTL_MS) return;
    this.refresh ??= this.load().finally(() => {
      this.refresh = undefined;
    });
    await Promise.race([this.refresh, Bun.sleep(API_BUDGET_MS)]);
  }

  private async load(): Promise<void> {
    try {
      for (const tenantId of new Set(this.tenantIds())) {
        for (const volume of await this.api.volumeUsage(tenantId)) this.usage.set(volume.uuid, volume);
      }
      this.fetchedAt = Date.now();
    } catch (error) {
      this.log.debug(`quota and usage unavailable: ${messageOf(error)}`);
    }
  }

  async close(): Promise<void> {
    await this.refresh;
  }
}
