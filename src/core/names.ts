import { PluginError } from "./errors.ts";

/** Linux NAME_MAX: a volume is one directory entry, so its name must fit in one. */
export const MAX_NAME_BYTES = 255;

const encoder = new TextEncoder();

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
  const shown = JSON.stringify(name.length > 80 ? `${name.slice(0, 80)}...` : name);
  const bytes = encoder.encode(name).length;
  if (bytes > MAX_NAME_BYTES) {
    throw new PluginError(
      "INVALID_NAME",
      `volume name ${shown} is ${bytes} bytes long; the limit is ${MAX_NAME_BYTES}`,
    );
  }
  if (name.includes("/")) {
    throw new PluginError("INVALID_NAME", `volume name ${shown} must not contain "/"`);
  }
  // Control characters (NUL, newline, ...) break logs, paths and terminals.
  if (/[\u0000-\u001f\u007f]/.test(name)) {
    throw new PluginError("INVALID_NAME", `volume name ${shown} must not contain control characters`);
  }
  if (name.startsWith(".")) {
    throw new PluginError("INVALID_NAME", `volume name ${shown} must not start with "."`);
  }
  return name;
}
