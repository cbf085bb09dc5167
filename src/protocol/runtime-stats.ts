import { heapStats } from "bun:jsc";
import { deadlineState } from "../core/deadline.ts";

export interface RuntimeStats {
  heapBytes: number;
  objects: number;
  maps: number;
  sets: number;
  promises: number;
  timers: number;
  pendingDeadlines: number;
  rssBytes: number;
}

/**
 * What a leak would grow, after a full collection: for soak runs and for an operator
 * chasing memory (`GET /debug/runtime`). The collection blocks the process for a few
 * milliseconds, so nothing calls this on its own.
 */
export function runtimeStats(): RuntimeStats {
  Bun.gc(true);
  const heap = heapStats();
  const count = (type: string) => heap.objectTypeCounts[type] ?? 0;
  return {
    heapBytes: heap.heapSize,
    objects: heap.objectCount,
    maps: count("Map"),
    sets: count("Set"),
    promises: count("Promise"),
    timers: count("Timeout"),
    pendingDeadlines: deadlineState().pending,
    rssBytes: process.memoryUsage.rss(),
  };
}
