import { readdir, readFile, rmdir, unlink } from "node:fs/promises";
import { join } from "node:path";
import { errnoCode, messageOf } from "../../core/errors.ts";
import type { Logger } from "../../logging.ts";
import type { QuobyteApi, Tenant } from "../../quobyte/api.ts";
import type { RemovePolicy } from "./options.ts";
import { encodeLabel, ownLabel, PLUGIN_LABEL } from "./volume-label.ts";

/** What versions before the API-side labels kept per volume, in this host's state directory. */
interface LegacyRecord {
  uuid: string;
  tenantId: string;
  createdAt: string;
  options: Record<string, string>;
  onRemove: RemovePolicy;
  fixedUser?: string;
  fixedGroup?: string;
  state?: "removing";
}

export interface LegacyMigration {
  /** <state-dir>/quobyte-volumes: one JSON file per volume. */
  dir: string;
  api: QuobyteApi;
  home: Tenant;
  log: Logger;
}

/**
 * Moves volumes recorded by an older version onto the API: each still-existing volume
 * gets this plugin's label (so every host sees it), an interrupted Remove is finished,
 * and each record is deleted once handled. An API failure stops the migration; the
 * remaining records are handled at the next start.
 */
export async function migrateLegacyRecords({ dir, api, home, log }: LegacyMigration): Promise<number> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((name) => !name.startsWith("."));
  } catch (error) {
    if (errnoCode(error) === "ENOENT") return 0;
    throw error;
  }
  let moved = 0;
  for (const name of names) {
    const file = join(dir, name);
    let record: LegacyRecord;
    try {
      record = JSON.parse(await readFile(file, "utf8")) as LegacyRecord;
    } catch (error) {
      log.warn(`skipping unreadable volume record ${file}: ${messageOf(error)}`);
      continue;
    }
    try {
      const current = await api.resolveVolume(name, record.tenantId);
      if (current === record.uuid && record.state === "removing") {
        if (record.onRemove === "erase") await api.eraseVolume(record.uuid);
        else if (record.onRemove === "delete") await api.deleteVolume(record.uuid);
        log.info(`finished the interrupted removal of volume ${name} (${record.uuid})`);
      } else if (current === record.uuid) {
        const own = ownLabel(await api.volumeLabels(PLUGIN_LABEL, record.uuid), home.id);
        if (!own || own.released) {
          const { fixedUser, fixedGroup } = record;
          const value = encodeLabel({
            version: 1,
            home: home.id,
            options: record.options,
            onRemove: record.onRemove,
            createdAt: record.createdAt,
            ...(fixedUser === undefined ? {} : { fixedUser }),
            ...(fixedGroup === undefined ? {} : { fixedGroup }),
          });
          await api.setVolumeLabel(record.uuid, { name: PLUGIN_LABEL, value });
          log.info(`volume ${name} (${record.uuid}) now carries its options on the Quobyte side`);
        }
      }
    } catch (error) {
      log.warn(`cannot move the record of volume ${name} to the Quobyte API yet (next start retries): ${messageOf(error)}`);
      return moved;
    }
    await unlink(file);
    moved += 1;
  }
  // Left behind only when an unreadable record stays in it.
  await rmdir(dir).catch(() => {});
  return moved;
}
