import { messageOf } from "../../core/errors.ts";
import type { Logger } from "../../logging.ts";
import { readFileNoFollow, writeFileAtomic } from "../../system/atomic-file.ts";
import type { ApiVolume, Tenant } from "../../quobyte/api.ts";
import { decodeLabel, encodeLabel, type PluginLabel } from "./volume-label.ts";

/** What a host keeps of the API's answers, so that Get and List answer while the API is down. */
export interface CatalogSnapshot {
  /** The tenant reference as configured and what it resolved to. */
  tenant: { ref: string } & Tenant;
  /** When the API last confirmed this snapshot (wall clock, for Status only). */
  confirmedAt: string;
  volumes: (ApiVolume & { label?: PluginLabel })[];
  /**
   * Written true only by a clean stop. After a crash the file may lag behind what the
   * API was told (a Remove cut off after deleteVolume): it is then no answer, only a
   * fallback for an API outage.
   */
  clean: boolean;
}

interface StoredSnapshot {
  version: 1;
  tenant: { ref: string; id: string; name: string };
  confirmedAt: string;
  clean: boolean;
  volumes: (ApiVolume & { label?: string })[];
}

/**
 * One JSON file, replaced atomically: a cache, not the truth (the API is), so a lost
 * or unreadable file only costs one API call at the next request.
 */
export class CatalogFile {
  private lastWritten = "";
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly path: string,
    private readonly log: Logger,
  ) {}

  async read(): Promise<CatalogSnapshot | undefined> {
    let text: string | undefined;
    try {
      text = await readFileNoFollow(this.path);
    } catch {
      return undefined;
    }
    if (text === undefined) return undefined;
    try {
      const stored = JSON.parse(text) as StoredSnapshot;
      if (stored.version !== 1 || !Array.isArray(stored.volumes) || typeof stored.tenant?.id !== "string") return undefined;
      this.lastWritten = JSON.stringify([stored.clean === true, stored.volumes]);
      return {
        tenant: stored.tenant,
        confirmedAt: stored.confirmedAt,
        clean: stored.clean === true,
        volumes: stored.volumes.map(({ label, ...volume }) => {
          const decoded = label === undefined ? undefined : decodeLabel(label);
          return decoded === undefined ? volume : { ...volume, label: decoded };
        }),
      };
    } catch {
      return undefined;
    }
  }

  /** Waits for the writes under way. */
  flush(): Promise<void> {
    return this.writing;
  }

  /** Writes when the volumes changed (usage counters aside); one write at a time. */
  write(snapshot: CatalogSnapshot): Promise<void> {
    const volumes = snapshot.volumes.map(({ label, usedBytes: _used, fileCount: _files, ...volume }) =>
      label === undefined ? volume : { ...volume, label: encodeLabel(label) },
    );
    const key = JSON.stringify([snapshot.clean, volumes]);
    if (key === this.lastWritten) return this.writing;
    this.lastWritten = key;
    const stored: StoredSnapshot = { version: 1, tenant: snapshot.tenant, confirmedAt: snapshot.confirmedAt, clean: snapshot.clean, volumes };
    this.writing = this.writing.then(() => writeFileAtomic(this.path, `${JSON.stringify(stored)}\n`, 0o600)).catch((error: unknown) => {
      // The next change writes again; forget what was "written" so it is not skipped.
      this.lastWritten = "";
      this.log.warn(`cannot write the volume cache ${this.path}: ${messageOf(error)}`);
    });
    return this.writing;
  }
}
