import { PluginError } from "../core/errors.ts";
import type { VolumeRecord, VolumeSummary } from "../core/types.ts";

/** The wire names of the protocol live in this file only. */

export const ACTIVATE_REPLY = { Implements: ["VolumeDriver"] } as const;

/** The engine reads this; the Go plugin SDK sends the same. */
export const CONTENT_TYPE = "application/vnd.docker.plugins.v1.1+json";

export interface WireVolume {
  Name: string;
  Mountpoint: string;
  /** RFC 3339 or absent: an empty string breaks the engine's decoder (and purges the volume). */
  CreatedAt?: string;
  Status?: Record<string, unknown>;
}

/** `Name` must be present; its content is validated by the core. */
export function nameOf(body: Record<string, unknown>): unknown {
  if (!("Name" in body)) throw new PluginError("INVALID_REQUEST", "Name is required; nothing was done");
  return body.Name;
}

/** `ID` must be present for Mount and Unmount. */
export function mountIdOf(body: Record<string, unknown>): unknown {
  if (!("ID" in body)) throw new PluginError("INVALID_REQUEST", "ID is required; nothing was done");
  return body.ID;
}

/** Takes `record.status` as it is: the driver hands out a fresh object for each Get. */
export function toWireVolume(record: VolumeRecord): WireVolume {
  const wire: WireVolume = { Name: record.name, Mountpoint: record.mountpoint, Status: record.status };
  if (record.createdAt && !Number.isNaN(Date.parse(record.createdAt))) wire.CreatedAt = record.createdAt;
  return wire;
}

export function toWireSummary(summary: VolumeSummary): Pick<WireVolume, "Name" | "Mountpoint"> {
  return { Name: summary.name, Mountpoint: summary.mountpoint };
}
