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

/** Filesystems on a local block device or in memory: a stat of them cannot hang on a network. */
const LOCAL_FILESYSTEMS = new Set(["ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "zfs", "tmpfs", "ramfs"]);

/**
 * Local filesystems where an fsync of one file makes every metadata change made before it
 * durable too (one journal, committed whole), or that a power cut empties whole (memory):
 * the intent log's replay relies on it (see planReplay). Not ext2 (no journal), f2fs, nor
 * btrfs and zfs, whose fsync logs only that file's changes ahead of the next transaction.
 */
const ORDERED_FILESYSTEMS = new Set(["ext3", "ext4", "xfs", "tmpfs", "ramfs"]);

/**
 * The types of the filesystem holding `path` and of every one mounted below it; empty
 * when nothing holds it. Read from /proc, never from the filesystems themselves; it
 * describes the mounts of this moment.
 */
export async function treeFilesystems(path: string, file = "/proc/self/mountinfo"): Promise<string[]> {
  const entries = parseMountInfo(await readFile(file, "utf8"));
  const inside = (mountPoint: string) => mountPoint === "/" || path === mountPoint || path.startsWith(`${mountPoint}/`);
  // The filesystem holding `path`: the longest mount point above it, the last one mounted.
  let holder: MountEntry | undefined;
  for (const entry of entries) if (inside(entry.mountPoint) && entry.mountPoint.length >= (holder?.mountPoint.length ?? 0)) holder = entry;
  if (!holder) return [];
  return [holder.fsType, ...entries.filter((entry) => entry.mountPoint.startsWith(`${path}/`)).map((entry) => entry.fsType)];
}

/** Whether filesystem types (of treeFilesystems) are all local: a stat of them cannot hang. */
export function isLocal(types: readonly string[]): boolean {
  return types.length > 0 && types.every((type) => LOCAL_FILESYSTEMS.has(type));
}

/** Whether filesystem types (of treeFilesystems) all keep metadata changes in order (see ORDERED_FILESYSTEMS). */
export function keepsMetadataOrder(types: readonly string[]): boolean {
  return types.length > 0 && types.every((type) => ORDERED_FILESYSTEMS.has(type));
}

/** A Quobyte client mount: fstype `fuse.quobyte` or a `quobyte@...` source. */
export function isQuobyteMount(entry: MountEntry): boolean {
  return entry.fsType === "fuse.quobyte" || entry.source.startsWith("quobyte@");
}
