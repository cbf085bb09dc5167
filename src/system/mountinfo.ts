import { readFile } from "node:fs/promises";

/** One line of /proc/self/mountinfo, the fields we use. */
export interface MountEntry {
  mountPoint: string;
  fsType: string;
  source: string;
}

/** mountinfo escapes space, tab, newline and backslash as octal (`\040`). */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
}

export function parseMountInfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    const fields = line.split(" ");
    // Optional fields end at a lone "-"; fstype and source follow it.
    const dash = fields.indexOf("-", 6);
    const mountPoint = fields[4];
    const fsType = fields[dash + 1];
    const source = fields[dash + 2];
    if (dash < 0 || mountPoint === undefined || fsType === undefined || source === undefined) continue;
    entries.push({ mountPoint: unescape(mountPoint), fsType, source: unescape(source) });
  }
  return entries;
}

/**
 * The filesystem mounted at exactly `path` (the last one: later mounts hide earlier
 * ones), or undefined. Reading /proc never touches the mounted filesystem, so this
 * cannot hang on a dead or frozen FUSE mount.
 */
export async function mountAt(path: string, file = "/proc/self/mountinfo"): Promise<MountEntry | undefined> {
  const entries = parseMountInfo(await readFile(file, "utf8"));
  return entries.findLast((entry) => entry.mountPoint === path);
}

/** A Quobyte client mount: fstype `fuse.quobyte` or a `quobyte@...` source. */
export function isQuobyteMount(entry: MountEntry): boolean {
  return entry.fsType === "fuse.quobyte" || entry.source.startsWith("quobyte@");
}
