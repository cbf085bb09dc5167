import { readFileSync } from "node:fs";
import { UsageError } from "../config.ts";

/** The largest id chown accepts; (uid_t)-1 means "unchanged" and is not a real id. */
const MAX_ID = 0xfffffffe;

export type AccountKind = "user" | "group";

/**
 * Resolves a user or group given by name or numeric id to its numeric id. Numeric ids
 * are taken as they are (containers often run as ids the host has no name for); names
 * are looked up in /etc/passwd or /etc/group. Returns undefined for an unknown name.
 * The lookup reads the files directly: a static binary has no NSS modules to ask. It reads
 * them synchronously: a few hundred local bytes, read before the socket opens, where a
 * thread-pool round trip would delay the engine's first call by milliseconds.
 */
export async function resolveAccountId(
  kind: AccountKind,
  value: string,
  files: { passwd?: string; group?: string } = {},
): Promise<number | undefined> {
  if (/^\d+$/.test(value)) {
    const id = Number(value);
    return id <= MAX_ID ? id : undefined;
  }
  const file = kind === "user" ? (files.passwd ?? "/etc/passwd") : (files.group ?? "/etc/group");
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
  for (const line of text.split("\n")) {
    const fields = line.split(":");
    if (fields[0] === value && fields[2] !== undefined && /^\d+$/.test(fields[2])) return Number(fields[2]);
  }
  return undefined;
}

/**
 * The gid of the socket's group (`--group`, or SOCKET_GROUP), or a usage error saying how
 * to create it: serve and install check it alike.
 */
export async function requireSocketGroup(group: string): Promise<number> {
  const gid = await resolveAccountId("group", group);
  if (gid === undefined) throw new UsageError(`--group ${group} (or SOCKET_GROUP) does not exist on this host; create it (groupadd ${group}) or name another`);
  return gid;
}
