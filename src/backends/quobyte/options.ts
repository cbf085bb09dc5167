import type { VolumeOptions } from "../../core/types.ts";
import { parseChoice, parseIdentifier, parseMode, parseSize } from "../option-values.ts";

export const QUOBYTE_OPTION_NAMES = [
  "user",
  "group",
  "mode",
  "tenant_id",
  "configuration_name",
  "size",
  "on_remove",
  "fixed_user",
  "fixed_group",
] as const;

export const REMOVE_POLICIES = ["delete", "erase", "keep"] as const;
export type RemovePolicy = (typeof REMOVE_POLICIES)[number];

/** Validated create options; undefined means "use the plugin's default". */
export interface QuobyteVolumeSpec {
  user?: string;
  group?: string;
  /** As the API wants it: octal digits written as a decimal number (0750 -> 750). */
  accessMode?: number;
  tenant?: string;
  configurationName?: string;
  sizeBytes?: number;
  onRemove: RemovePolicy;
  fixedUser?: string;
  fixedGroup?: string;
}

/** Checks every option before anything is sent to the API. */
export function parseQuobyteOptions(options: VolumeOptions, volume: string): QuobyteVolumeSpec {
  const id = (option: string) => (options[option] === undefined ? undefined : parseIdentifier(option, options[option], volume));
  const mode = options.mode === undefined ? undefined : parseMode(options.mode, volume);
  return {
    user: id("user"),
    group: id("group"),
    accessMode: mode === undefined ? undefined : Number(mode.toString(8)),
    tenant: id("tenant_id"),
    configurationName: id("configuration_name"),
    sizeBytes: options.size === undefined ? undefined : parseSize(options.size, volume),
    onRemove: options.on_remove === undefined ? "delete" : parseChoice("on_remove", options.on_remove, REMOVE_POLICIES, volume),
    fixedUser: id("fixed_user"),
    fixedGroup: id("fixed_group"),
  };
}

/**
 * The Quobyte client maps all access under `<user>#<group>@<volume>` to that user and
 * group (it needs `--allow-usermapping-in-volumename`); either part may be left out.
 */
export function fixedUserEntry(volume: string, fixedUser?: string, fixedGroup?: string): string {
  if (fixedUser === undefined && fixedGroup === undefined) return volume;
  return `${fixedUser ?? ""}${fixedGroup === undefined ? "" : `#${fixedGroup}`}@${volume}`;
}
