import { PluginError } from "../core/errors.ts";

/** Parsers for option values shared by the backends; each refuses with INVALID_OPTION. */

export function parseMode(value: string, volume?: string): number {
  const mode = /^[0-7]{1,5}$/.test(value) ? Number.parseInt(value, 8) : Number.NaN;
  if (!(mode <= 0o7777)) {
    throw new PluginError(
      "INVALID_OPTION",
      `mode ${JSON.stringify(value)} is not an octal file mode between 0 and 7777 (for example 0755 or 2770)`,
      { volume },
    );
  }
  return mode;
}

const UNITS: Record<string, number> = { "": 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40, P: 2 ** 50 };

/** `10G`, `512M`, `1.5T`, `4096` (binary units; `Gi`, `GB` and `GiB` read the same). */
export function parseSize(value: string, volume?: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([KMGTP]?)(?:i?B)?$/i.exec(value.trim());
  const bytes = match ? Math.floor(Number(match[1]) * (UNITS[(match[2] ?? "").toUpperCase()] ?? Number.NaN)) : Number.NaN;
  if (!(bytes > 0 && bytes <= Number.MAX_SAFE_INTEGER)) {
    throw new PluginError("INVALID_OPTION", `size ${JSON.stringify(value)} is not a size such as 512M, 10G or 2T`, { volume });
  }
  return bytes;
}

/** A user, group, tenant or configuration name: printable, no separators we build paths with. */
export function parseIdentifier(option: string, value: string, volume?: string): string {
  if (value.length === 0 || value.length > 255 || /[\u0000-\u001f\u007f/#@]/.test(value)) {
    throw new PluginError(
      "INVALID_OPTION",
      `${option} ${JSON.stringify(value.slice(0, 80))} must be 1-255 printable characters without "/", "#" or "@"`,
      { volume },
    );
  }
  return value;
}

export function parseChoice<T extends string>(option: string, value: string, allowed: readonly T[], volume?: string): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new PluginError("INVALID_OPTION", `${option} ${JSON.stringify(value)} must be one of: ${allowed.join(", ")}`, { volume });
}
