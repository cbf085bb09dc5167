import { hostIdentity, processAlive } from "../../system/atomic-file.ts";

/** Another host's "creating" record older than this is a crash, not a Create in flight. */
const ABANDONED_CREATE_MS = 60 * 60 * 1000;

/** What we store per volume. Shared roots share it, so it never holds secrets. */
export interface PosixVolumeMeta {
  version: 1;
  createdAt: string;
  options: Record<string, string>;
  /**
   * "creating" is written before the directory, "removing" before it is moved away: an
   * interrupted Create is rolled back at start, an interrupted Remove finished (at start,
   * or by the next Create or Remove). Only a "ready" volume is one for Get and List.
   */
  state: "creating" | "ready" | "removing";
  /** Who is creating it, so that a crashed creator's leftover can be told from one in flight. */
  creator?: { host: string; pid: number };
}

/**
 * A "creating" record whose Create will never finish: written by a process of this host
 * that is gone (or whose pid we now hold), or by anyone an hour ago. Another host's
 * fresh record may be a Create in flight and is left alone.
 */
export function isInterruptedCreate(meta: PosixVolumeMeta): boolean {
  if (meta.state !== "creating") return false;
  const creator = meta.creator;
  const crashedHere = creator?.host === hostIdentity() && (creator.pid === process.pid || !processAlive(creator.pid));
  return crashedHere || Date.now() - Date.parse(meta.createdAt) > ABANDONED_CREATE_MS;
}
