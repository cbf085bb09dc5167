import { PluginError } from "../../core/errors.ts";
import type { VolumeOptions } from "../../core/types.ts";
import { resolveAccountId } from "../../system/accounts.ts";
import type { OwnerAndMode } from "../../system/fs-steps.ts";
import { parseMode } from "../option-values.ts";

/** Options the posix backend accepts at create. */
export const POSIX_OPTION_NAMES = ["user", "group", "mode"] as const;

/** Owner and permissions to give a new volume's root directory. */
export type Ownership = OwnerAndMode;

/** Parses `user`, `group` (name or numeric id) and `mode` (octal, at most 07777). */
export async function parseOwnership(options: VolumeOptions, volume: string): Promise<Ownership> {
  const out: Ownership = {};
  for (const kind of ["user", "group"] as const) {
    const value = options[kind];
    if (value === undefined) continue;
    const id = await resolveAccountId(kind, value);
    if (id === undefined) {
      throw new PluginError(
        "INVALID_OPTION",
        `${kind} ${JSON.stringify(value)} does not exist on this host; give a ${kind} name from /etc/${kind === "user" ? "passwd" : "group"} or a numeric id`,
        { volume },
      );
    }
    if (kind === "user") out.uid = id;
    else out.gid = id;
  }
  if (options.mode !== undefined) out.mode = parseMode(options.mode, volume);
  return out;
}
