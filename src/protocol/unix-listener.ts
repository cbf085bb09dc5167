import { chmodSync, chownSync, lstatSync, mkdirSync, unlinkSync } from "node:fs";
import { dirname } from "node:path";
import { errnoCode } from "../core/errors.ts";
import { type Draining, drainServer } from "./drain.ts";

/** sockaddr_un holds 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 107;

export interface UnixListenOptions {
  path: string;
  /** Group owning the socket (mode 0660): who may drive the plugin. */
  gid: number;
  fetch: (request: Request) => Response | Promise<Response>;
  /** Seconds a connection may stay silent before it is closed. */
  idleTimeoutSeconds: number;
  maxRequestBodySize: number;
  /** How long stop() lets requests in flight finish (ms). */
  drainMs: number;
  /** Marks replies during the stop; `fetch` must be wrapped by it. */
  draining: Draining;
}

export interface UnixListener {
  readonly path: string;
  /** Removes the socket file (nobody new connects), lets in-flight requests finish within the drain bound. */
  stop(): Promise<void>;
}

/** Refuses a socket path that cannot work, before anything is created. */
export function checkSocketPath(path: string): void {
  if (!path.startsWith("/")) throw new Error(`socket path ${path} must be absolute`);
  const bytes = new TextEncoder().encode(path).length;
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    throw new Error(`socket path ${path} is ${bytes} bytes long; Unix sockets allow at most ${MAX_SOCKET_PATH_BYTES}`);
  }
}

/**
 * True when something accepts connections on the socket at `path`. A missing file (every
 * clean start) is answered without connecting: `node:net` is loaded only when there is a
 * file to try, because loading it costs the start several ms before the socket opens.
 */
export async function socketIsLive(path: string, timeoutMs = 1000): Promise<boolean> {
  try {
    lstatSync(path);
  } catch (error) {
    if (errnoCode(error) === "ENOENT") return false;
  }
  const { connect } = await import("node:net");
  return new Promise((resolve) => {
    const socket = connect(path);
    const done = (live: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(live);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/**
 * Removes a stale socket left by a crashed plugin: the engine would otherwise spend 15 s
 * retrying it on every call. A live socket (another plugin serving) or anything that is
 * not a socket is never removed.
 */
export async function clearStaleSocket(path: string): Promise<void> {
  let info;
  try {
    info = lstatSync(path);
  } catch (error) {
    if (errnoCode(error) === "ENOENT") return;
    throw error;
  }
  if (!info.isSocket()) throw new Error(`${path} exists and is not a socket; refusing to replace it`);
  if (await socketIsLive(path)) throw new Error(`another process is already serving on ${path}`);
  unlinkSync(path);
}

/** Serves `fetch` on a Unix socket owned by root:<gid>, mode 0660. */
export async function listenUnix(options: UnixListenOptions): Promise<UnixListener> {
  const { path } = options;
  checkSocketPath(path);
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  await clearStaleSocket(path);

  // Create the socket without group/other access, then open it to the group: there is
  // no moment at which the world can connect.
  const previous = process.umask(0o177);
  let server;
  try {
    server = Bun.serve({
      unix: path,
      fetch: options.fetch,
      maxRequestBodySize: options.maxRequestBodySize,
      // Honoured on Unix sockets too, though bun-types declares it for TCP only.
      ...({ idleTimeout: options.idleTimeoutSeconds } as object),
    });
  } finally {
    process.umask(previous);
  }
  try {
    chownSync(path, process.getuid?.() ?? 0, options.gid);
    chmodSync(path, 0o660);
  } catch (error) {
    server.stop(true);
    throw error;
  }

  let stopped = false;
  return {
    path,
    async stop() {
      if (stopped) return;
      stopped = true;
      try {
        unlinkSync(path);
      } catch (error) {
        if (errnoCode(error) !== "ENOENT") throw error;
      }
      await options.draining.begin();
      await drainServer(server, options.drainMs);
    },
  };
}
