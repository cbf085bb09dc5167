// Creates volumes the fast way, behind the plugin's back: the posix backend's metadata
// file `<root>/.docker-quobyte-plugin/volumes/<name>` plus the directory `<root>/<name>`,
// exactly what a Create leaves behind (minus the fsyncs). Only for a stopped plugin.

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export function volumeName(index: number): string {
  return `vol-${String(index).padStart(6, "0")}`;
}

/** Adds volumes volumeName(from) .. volumeName(to - 1) under `root`. */
export function populate(root: string, from: number, to: number): void {
  const metaDir = join(root, ".docker-quobyte-plugin", "volumes");
  mkdirSync(metaDir, { recursive: true, mode: 0o755 });
  const text = `${JSON.stringify({ version: 1, createdAt: new Date().toISOString(), options: {}, state: "ready" })}\n`;
  for (let i = from; i < to; i++) {
    const name = volumeName(i);
    mkdirSync(join(root, name), { mode: 0o755 });
    writeFileSync(join(metaDir, name), text, { mode: 0o644 });
  }
}
