/**
 * Volume labels of the fake Quobyte API: getLabels, setLabels, deleteLabels as in
 * quobyte/api types.go (Quobyte 3.x): a label is {namespace, entity_type, entity_id,
 * name, value}; the only namespace is SYSTEM; labels live and die with their volume.
 * Labels given to createVolume are stored on the volume (see state.ts).
 */
import { isPlainObject, invalidRequest, optString, type Params } from "./errors.ts";
import type { FakeLabel } from "./types.ts";

const ENTITY_TYPES = ["SERVICE", "TENANT", "VOLUME"] as const;

/** What the label methods need from the state: volumes by UUID and permission checks. */
export interface LabelHost {
  volumeLabels(uuid: string): { tenantId: string; labels: FakeLabel[] } | undefined;
  canReadTenant(tenantId: string): boolean;
  /** Throws PERMISSION_DENIED unless the caller may change the tenant's volumes. */
  requireWriteTenant(tenantId: string): void;
  notFound(text: string): Error;
  invalidArgument(text: string): Error;
}

interface LabelRef {
  entityId: string;
  name: string;
  value: string;
}

function parseLabel(raw: unknown, host: LabelHost): LabelRef {
  if (!isPlainObject(raw)) throw invalidRequest();
  const type = raw["entity_type"] ?? "VOLUME";
  if (typeof type !== "string" || !(ENTITY_TYPES as readonly string[]).includes(type)) throw invalidRequest();
  // The fake keeps labels of volumes only; the plugin never labels anything else.
  if (type !== "VOLUME") throw host.invalidArgument(`Labels of entity type ${type} are not supported by this server`);
  const entityId = optString(raw, "entity_id");
  const name = optString(raw, "name");
  if (entityId === undefined || name === undefined) throw host.invalidArgument("Label needs entity_id and name");
  if (!/^[\x20-\x7e]+$/.test(name)) throw host.invalidArgument(`Label name '${name}' must be printable ASCII`);
  const value = raw["value"] ?? "";
  if (typeof value !== "string") throw invalidRequest();
  return { entityId, name, value };
}

function labelsParam(p: Params): unknown[] {
  const v = p["label"];
  if (v === undefined || v === null) return [];
  return Array.isArray(v) ? v : [v];
}

/** getLabels {namespace?, filter_entity_type?, filter_entity_id?, label_name?} -> {label: [...]} */
export function getLabels(p: Params, host: LabelHost, uuids: Iterable<string>): FakeLabelEntry[] {
  const type = optString(p, "filter_entity_type");
  if (type !== undefined && !(ENTITY_TYPES as readonly string[]).includes(type)) throw invalidRequest();
  if (type !== undefined && type !== "VOLUME") return [];
  const entity = optString(p, "filter_entity_id");
  const name = optString(p, "label_name");
  const out: FakeLabelEntry[] = [];
  for (const uuid of entity === undefined ? uuids : [entity]) {
    const volume = host.volumeLabels(uuid);
    if (volume === undefined || !host.canReadTenant(volume.tenantId)) continue;
    for (const label of volume.labels) {
      if (name !== undefined && label.name !== name) continue;
      out.push({ namespace: "SYSTEM", entity_type: "VOLUME", entity_id: uuid, name: label.name, value: label.value });
    }
  }
  return out;
}

export interface FakeLabelEntry {
  namespace: "SYSTEM";
  entity_type: "VOLUME";
  entity_id: string;
  name: string;
  value: string;
}

/** setLabels {label: [...]}: adds or replaces labels by name; all checked before any is applied. */
export function setLabels(p: Params, host: LabelHost): void {
  const changes = labelsParam(p).map((raw) => checked(parseLabel(raw, host), host));
  for (const { label, labels } of changes) {
    const same = labels.find((l) => l.name === label.name);
    if (same === undefined) labels.push({ name: label.name, value: label.value });
    else same.value = label.value;
  }
}

/** deleteLabels {label: [...]}: removes labels by entity and name; absent labels are ignored. */
export function deleteLabels(p: Params, host: LabelHost): void {
  const changes = labelsParam(p).map((raw) => checked(parseLabel(raw, host), host));
  for (const { label, labels } of changes) {
    const at = labels.findIndex((l) => l.name === label.name);
    if (at >= 0) labels.splice(at, 1);
  }
}

function checked(label: LabelRef, host: LabelHost): { label: LabelRef; labels: FakeLabel[] } {
  const volume = host.volumeLabels(label.entityId);
  if (volume === undefined) throw host.notFound(`Volume '${label.entityId}' not found`);
  host.requireWriteTenant(volume.tenantId);
  return { label, labels: volume.labels };
}
