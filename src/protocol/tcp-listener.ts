import { readFileSync } from "node:fs";
import { type Draining, drainServer } from "./drain.ts";

export interface TcpListenOptions {
  /** `tcp://HOST:PORT`. */
  address: string;
  tlsCert?: string;
  tlsKey?: string;
  /** With a CA, clients must present a certificate it signed (mutual TLS). */
  tlsCa?: string;
  fetch: (request: Request) => Response | Promise<Response>;
  idleTimeoutSeconds: number;
  maxRequestBodySize: number;
  /** How long stop() lets requests in flight finish (ms). */
  drainMs: number;
  /** Marks replies during the stop; `fetch` must be wrapped by it. */
  draining: Draining;
}

export interface TcpListener {
  /** What the engine's spec file should name: https://HOST:PORT or tcp://HOST:PORT. */
  readonly url: string;
  stop(): Promise<void>;
}

/** A listen address we refuse to serve: the operator must change the flags. */
export class ListenError extends Error {
  override readonly name = "ListenError";
}

export function isLoopback(host: string): boolean {
  if (host === "localhost" || host === "::1" || host === "[::1]") return true;
  // Loaded only for a --listen address: importing node:net costs every start several ms.
  const { isIP } = require("node:net") as typeof import("node:net");
  return isIP(host) === 4 && host.startsWith("127.");
}

export interface TlsFiles {
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
  tlsCa?: string | undefined;
}

/** The one rule every command with TLS files shares; the message, or undefined when kept. */
export function tlsPairProblem(files: TlsFiles): string | undefined {
  return (files.tlsCert === undefined) !== (files.tlsKey === undefined) ? "--tls-cert and --tls-key go together" : undefined;
}

/**
 * Checks `--listen` and its TLS files before anything binds. Pure. The plugin protocol
 * has no authentication of its own: whoever reaches the port can create, mount and delete
 * volumes. Off loopback, only client certificates (`--tls-ca`) lock the door; a server
 * certificate alone merely encrypts it.
 */
export function checkListenFlags(address: string, files: TlsFiles): { host: string; port: number; tls: boolean } {
  const match = /^tcp:\/\/(\[[0-9a-fA-F:]+\]|[^:/]+):(\d{1,5})$/.exec(address);
  const port = Number(match?.[2]);
  if (!match?.[1] || !(port >= 0 && port <= 65535)) {
    throw new ListenError(`--listen ${JSON.stringify(address)} must look like tcp://127.0.0.1:9000`);
  }
  const host = match[1].replace(/^\[|\]$/g, "");
  const tls = files.tlsCert !== undefined || files.tlsKey !== undefined;
  if (!isLoopback(host)) {
    const given = { "--tls-cert": files.tlsCert, "--tls-key": files.tlsKey, "--tls-ca": files.tlsCa };
    const missing = Object.entries(given).filter(([, file]) => file === undefined).map(([flag]) => flag);
    if (missing.length > 0) {
      throw new ListenError(
        `--listen ${address} is reachable from the network and the plugin protocol has no login: it needs --tls-cert, --tls-key and --tls-ca (missing ${missing.join(", ")}); give the engine its client certificate with \`docker-quobyte-plugin write-spec --address https://${match[1]}:${port} --tls-ca CA.pem --tls-cert CLIENT.pem --tls-key CLIENT-KEY.pem\`, or listen on 127.0.0.1`,
      );
    }
  }
  const pairing = tlsPairProblem(files);
  if (pairing !== undefined) throw new ListenError(pairing);
  if (files.tlsCa !== undefined && !tls) throw new ListenError("--tls-ca needs --tls-cert and --tls-key");
  return { host, port, tls };
}

/** Serves `fetch` on TCP, with TLS (and client certificates with a CA) when given. */
export function listenTcp(options: TcpListenOptions): TcpListener {
  const { host, port, tls } = checkListenFlags(options.address, options);
  const server = Bun.serve({
    hostname: host,
    port,
    fetch: options.fetch,
    idleTimeout: options.idleTimeoutSeconds,
    maxRequestBodySize: options.maxRequestBodySize,
    ...(tls
      ? {
          tls: {
            cert: readFileSync(options.tlsCert ?? ""),
            key: readFileSync(options.tlsKey ?? ""),
            ...(options.tlsCa === undefined
              ? {}
              : { ca: readFileSync(options.tlsCa), requestCert: true, rejectUnauthorized: true }),
          },
        }
      : {}),
  });
  const shownHost = host.includes(":") ? `[${host}]` : host;
  return {
    url: `${tls ? "https" : "tcp"}://${shownHost}:${server.port}`,
    async stop() {
      await options.draining.begin();
      await drainServer(server, options.drainMs);
    },
  };
}
