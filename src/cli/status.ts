import { defineCommand } from "citty";
import { defaultSocketPath, UsageError } from "../config.ts";
import { errnoCode } from "../core/errors.ts";
import type { DependencyHealth } from "../core/health.ts";
import { assertKnownArgs, nameArg } from "./args.ts";
import { tlsPairProblem } from "../protocol/tcp-listener.ts";
import { requirePemFile } from "./file-checks.ts";

const args = {
  ...nameArg,
  socket: { type: "string", description: "Socket of the running plugin", valueHint: "PATH" },
  url: {
    type: "string",
    description: "A plugin serving --listen: https://HOST:PORT (with --tls-ca, and --tls-cert/--tls-key when it requires client certificates) or http://127.0.0.1:PORT",
    valueHint: "URL",
  },
  "tls-ca": { type: "string", description: "With an https --url: CA that signed the plugin's certificate", valueHint: "FILE" },
  "tls-cert": { type: "string", description: "With an https --url: client certificate to present", valueHint: "FILE" },
  "tls-key": { type: "string", description: "With an https --url: key of --tls-cert", valueHint: "FILE" },
  json: { type: "boolean", description: "Print JSON for scripts" },
} as const;

/** Exit codes for scripts and monitoring. */
export const STATUS_EXIT = { healthy: 0, unhealthy: 1, unreachable: 2 } as const;

interface StatusReport {
  status: string;
  backend: string;
  scope: string;
  storage: { state: string; detail: string };
  dependencies: Record<string, DependencyHealth>;
  volumes: { name: string; mounts: number; status: Record<string, unknown> }[];
}

interface Target {
  url: string;
  /** What the operator named, for messages. */
  shown: string;
  init: RequestInit & { unix?: string; tls?: { ca?: string; cert?: string; key?: string } };
}

export default defineCommand({
  meta: {
    name: "status",
    description: "Show the running plugin's health per dependency, its volumes and mounts on this host; exit 0 healthy, 1 degraded or down, 2 unreachable",
  },
  args,
  async run({ args: parsed, rawArgs }): Promise<number> {
    assertKnownArgs(rawArgs, args, parsed);
    const target = targetOf(parsed);
    let response: Response;
    try {
      response = await fetch(target.url, { ...target.init, signal: AbortSignal.timeout(30_000) });
    } catch (error) {
      process.stderr.write(`error: ${unreachable(target.shown, error, parsed.url === undefined ? "socket" : new URL(target.url).protocol)}\n`);
      return STATUS_EXIT.unreachable;
    }
    if (!response.ok) {
      process.stderr.write(`error: ${target.shown} answered HTTP ${response.status}; is it this plugin (docker-quobyte-plugin serve)?\n`);
      return STATUS_EXIT.unreachable;
    }
    const report = (await response.json()) as StatusReport;
    process.stdout.write(parsed.json ? `${JSON.stringify(report, null, 2)}\n` : `${renderTable(report)}\n`);
    return report.status === "ok" ? STATUS_EXIT.healthy : STATUS_EXIT.unhealthy;
  },
});

function targetOf(parsed: { name?: string; socket?: string; url?: string; "tls-ca"?: string; "tls-cert"?: string; "tls-key"?: string }): Target {
  const given = [parsed.name, parsed.socket, parsed.url].filter((value) => value !== undefined).length;
  if (given > 1) throw new UsageError("give one of --name, --socket or --url");
  const tlsFiles = [parsed["tls-ca"], parsed["tls-cert"], parsed["tls-key"]];
  if (parsed.url === undefined) {
    if (tlsFiles.some((file) => file !== undefined)) throw new UsageError("--tls-ca, --tls-cert and --tls-key go with an https --url");
    const socket = parsed.socket ?? defaultSocketPath(parsed.name);
    return { url: "http://plugin/status", shown: socket, init: { unix: socket } };
  }
  let url: URL;
  try {
    url = new URL(parsed.url);
  } catch {
    throw new UsageError(`--url ${JSON.stringify(parsed.url)} is not a URL such as https://host:8443`);
  }
  if (url.protocol === "tcp:") url = new URL(`http://${url.host}`);
  if (url.protocol !== "https:" && url.protocol !== "http:") throw new UsageError(`--url ${parsed.url} must be https://HOST:PORT, or http:// / tcp:// on loopback`);
  if (url.protocol === "http:" && tlsFiles.some((file) => file !== undefined)) throw new UsageError("TLS files need an https:// --url");
  const pairing = tlsPairProblem({ tlsCert: parsed["tls-cert"], tlsKey: parsed["tls-key"] });
  if (pairing !== undefined) throw new UsageError(pairing);
  const tls: { ca?: string; cert?: string; key?: string } = {};
  if (parsed["tls-ca"] !== undefined) tls.ca = requirePemFile("--tls-ca", parsed["tls-ca"], "certificate");
  if (parsed["tls-cert"] !== undefined && parsed["tls-key"] !== undefined) {
    tls.cert = requirePemFile("--tls-cert", parsed["tls-cert"], "certificate");
    tls.key = requirePemFile("--tls-key", parsed["tls-key"], "private key");
  }
  return { url: new URL("/status", url).toString(), shown: url.origin, init: url.protocol === "https:" ? { tls } : {} };
}

/** The runtime's fetch texts ("Was there a typo in the url or port?") as what to do. */
function unreachable(where: string, error: unknown, via: "socket" | string): string {
  const isSocket = via === "socket";
  const code = errnoCode(error);
  const name = error instanceof Error ? error.name : "";
  const start = "start it with `systemctl start docker-quobyte-plugin.socket docker-quobyte-plugin.service` or `docker-quobyte-plugin serve`";
  if (name === "TimeoutError" || name === "AbortError") return `the plugin at ${where} did not answer within 30 s; it is stuck: check its log (journalctl -u docker-quobyte-plugin)`;
  if (isSocket && code === "ENOENT") return `the plugin is not running at ${where} (no such socket); ${start}, or name its socket with --socket or --name`;
  if (isSocket && code === "ECONNREFUSED") return `nothing answers on ${where} (a socket left by a plugin that died); ${start}`;
  if (code === "EACCES" || code === "EPERM") return `permission denied on ${where}: run status as root or as a member of the socket's group (--group)`;
  if (code === "ECONNREFUSED") return `nothing listens at ${where}; ${start} with --listen`;
  // A plugin with --tls-ca ends the handshake (EPROTO) or the connection (ECONNRESET) of a client it does not trust.
  if (via === "https:" && (code === "EPROTO" || code === "ECONNRESET" || /CERT|SELF_SIGNED|UNABLE_TO|DEPTH_ZERO/.test(code ?? ""))) {
    return `the TLS handshake with ${where} failed (${code}): give --tls-ca with the CA of the plugin's certificate, and --tls-cert/--tls-key of a client certificate signed by the plugin's --tls-ca`;
  }
  return `cannot reach the plugin at ${where} (${code ?? name}); ${start}`;
}

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

/** One line per dependency: state, latency, detail, and the last failure with its time. */
function dependencyLines(dependencies: Record<string, DependencyHealth>): string[] {
  return Object.entries(dependencies).map(([name, dep]) => {
    const latency = dep.latencyMs === undefined ? "" : ` (${dep.latencyMs} ms)`;
    const last = dep.lastError && dep.ok ? `; last error at ${dep.lastError.at}: ${dep.lastError.message}` : "";
    return `${name.padEnd(6)} ${dep.state}${latency}: ${dep.detail}${last}`;
  });
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
  lines.unshift(`${report.status}: backend ${report.backend} (scope ${report.scope})`, ...dependencyLines(report.dependencies), "");
  return lines.join("\n");
}
