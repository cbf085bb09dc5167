import { defineCommand } from "citty";
import { defaultSocketPath, UsageError } from "../config.ts";
import { assertKnownArgs, nameArg } from "./args.ts";

const args = {
  ...nameArg,
  socket: { type: "string", description: "Socket of the running plugin", valueHint: "PATH" },
  json: { type: "boolean", description: "Print JSON for scripts" },
} as const;

interface StatusReport {
  backend: string;
  scope: string;
  storage: { state: string; detail: string };
  volumes: { name: string; mounts: number; status: Record<string, unknown> }[];
}

export default defineCommand({
  meta: { name: "status", description: "Show the running plugin's volumes, mounts on this host, and storage health" },
  args,
  async run({ args: parsed, rawArgs }) {
    assertKnownArgs(rawArgs, args, parsed);
    if (parsed.name !== undefined && parsed.socket !== undefined) throw new UsageError("give --name or --socket, not both");
    const socket = parsed.socket ?? defaultSocketPath(parsed.name);
    let response: Response;
    try {
      response = await fetch("http://plugin/status", { unix: socket, signal: AbortSignal.timeout(30_000) });
    } catch (error) {
      throw new Error(`cannot reach the plugin at ${socket}: ${(error as Error).message}`);
    }
    if (!response.ok) throw new Error(`the plugin at ${socket} answered HTTP ${response.status}: ${await response.text()}`);
    const report = (await response.json()) as StatusReport;
    if (parsed.json) {
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      return;
    }
    process.stdout.write(`${renderTable(report)}\n`);
  },
});

function bytes(value: unknown): string {
  if (typeof value !== "number") return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let n = value;
  let unit = 0;
  while (n >= 1024 && unit < units.length - 1) {
    n /= 1024;
    unit++;
  }
  return `${n >= 10 || unit === 0 ? Math.round(n) : n.toFixed(1)} ${units[unit]}`;
}

/** A plain aligned table: scripts should use --json. */
export function renderTable(report: StatusReport): string {
  const rows = [["VOLUME", "MOUNTS", "QUOTA", "USED", "STATE"]];
  for (const volume of report.volumes) {
    const state = typeof volume.status.error === "string" ? "error" : String(volume.status.state ?? "ok");
    rows.push([volume.name, String(volume.mounts), bytes(volume.status.quotaBytes), bytes(volume.status.usedBytes), state]);
  }
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? "").length))) ?? [];
  const lines = rows.map((row) => row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join("  ").trimEnd());
  lines.unshift(`backend ${report.backend} (scope ${report.scope}); storage ${report.storage.state}: ${report.storage.detail}`, "");
  return lines.join("\n");
}
