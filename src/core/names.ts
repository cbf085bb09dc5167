import { PluginError } from "./errors.ts";

/** Linux NAME_MAX: a volume is one directory entry, so its name must fit in one. */
export const MAX_NAME_BYTES = 255;

const CONTROL_CHARACTER = /[\u0000-\u001f\u007f]/;

/** A refused name as the error shows it: quoted, and cut after 80 characters. */
function shown(name: string): string {
  return JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}...` : name);
}

/**
 * Refuses names that could address anything but one entry directly under the storage
 * root. Docker validates nothing for plugin volumes, so `../x`, `a/b`, NUL or newlines
 * arrive as sent. A leading dot is refused too: hidden entries hold our own metadata.
 */
export function validateVolumeName(name: unknown): string {
  if (typeof name !== "string") {
    throw new PluginError("INVALID_NAME", "volume name must be a string");
  }
  if (name.length === 0) throw new PluginError("INVALID_NAME", "volume name must not be empty");
  // Every request checks its name: nothing is allocated unless the name is refused.
  const bytes = Buffer.byteLength(name, "utf8");
  if (bytes > MAX_NAME_BYTES) {
    throw new PluginError(
      "INVALID_NAME",
      `volume name ${shown(name)} is ${bytes} bytes long; the limit is ${MAX_NAME_BYTES}`,
    );
  }
  if (name.includes("/")) {
    throw new PluginError("INVALID_NAME", `volume name ${shown(name)} must not contain "/"`);
  }
  // Control characters (NUL, newline, ...) break logs, paths and terminals.
  if (CONTROL_CHARACTER.test(name)) {
    throw new PluginError("INVALID_NAME", `volume name ${shown(name)} must not contain control characters`);
  }
  if (name.startsWith(".")) {
    throw new PluginError("INVALID_NAME", `volume name ${shown(name)} must not start with "."`);
  }
  return name;
}
