import { REMOVE_POLICIES, type RemovePolicy } from "./options.ts";

/**
 * The label this plugin puts on its Quobyte volumes. It carries what every host needs to
 * serve the volume (its Docker options) so that no host depends on another host's state.
 */
export const PLUGIN_LABEL = "docker-quobyte-plugin";

export interface PluginLabel {
  version: 1;
  /**
   * The default tenant of the plugin that made or adopted the volume: plugins configured
   * with the same tenant form one cluster and list each other's volumes; a second cluster
   * on the same Quobyte (another default tenant) stays out of this one's List.
   */
  home: string;
  options: Record<string, string>;
  onRemove: RemovePolicy;
  fixedUser?: string;
  fixedGroup?: string;
  /** When the volume was made or adopted; CreatedAt when the API reports no creation time. */
  createdAt: string;
  /**
   * Removed with on_remove=keep: the volume stays in Quobyte but is no longer this
   * cluster's (out of List everywhere); a repeated Remove of it is a success.
   */
  released?: true;
}

/** Label values go over JSON-RPC as strings; non-ASCII is escaped so any server keeps them intact. */
export function encodeLabel(label: PluginLabel): string {
  return JSON.stringify(label).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** This cluster's label (made or adopted by a plugin with this default tenant), released or not. */
export function ownLabel(values: Iterable<{ value: string }>, home: string): PluginLabel | undefined {
  for (const { value } of values) {
    const label = decodeLabel(value);
    if (label?.home === home) return label;
  }
  return undefined;
}

/** The label's content, or undefined when it is not one this version understands. */
export function decodeLabel(value: string): PluginLabel | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    return undefined;
  }
  if (typeof parsed !== "object" || parsed === null) return undefined;
  const p = parsed as Record<string, unknown>;
  if (p.version !== 1 || typeof p.home !== "string" || typeof p.createdAt !== "string") return undefined;
  if (!(REMOVE_POLICIES as readonly unknown[]).includes(p.onRemove)) return undefined;
  if (typeof p.options !== "object" || p.options === null || Array.isArray(p.options)) return undefined;
  const options: Record<string, string> = {};
  for (const [key, v] of Object.entries(p.options)) if (typeof v === "string") options[key] = v;
  return {
    version: 1,
    home: p.home,
    options,
    onRemove: p.onRemove as RemovePolicy,
    createdAt: p.createdAt,
    ...(typeof p.fixedUser === "string" ? { fixedUser: p.fixedUser } : {}),
    ...(typeof p.fixedGroup === "string" ? { fixedGroup: p.fixedGroup } : {}),
    ...(p.released === true ? { released: true as const } : {}),
  };
}
