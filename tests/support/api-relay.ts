import { createConnection, createServer, type Server, type Socket } from "node:net";

/**
 * A loopback TCP relay in front of the fake Quobyte API: one host's own road to the API,
 * which a test can cut (connections refused, open ones reset) while other hosts keep
 * working, and restore on the same port.
 */
export interface ApiRelay {
  /** The API URL through the relay. */
  readonly url: string;
  readonly port: number;
  /** Stops listening and resets open connections: the API is unreachable for this host. */
  down(): Promise<void>;
  /** Listens again on the same port. */
  up(): Promise<void>;
  close(): Promise<void>;
}

export async function startApiRelay(target: { port: number }, path = "/"): Promise<ApiRelay> {
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const s = createServer((client) => {
        const upstream = createConnection({ host: "127.0.0.1", port: target.port });
        for (const socket of [client, upstream]) {
          sockets.add(socket);
          socket.on("close", () => sockets.delete(socket));
          socket.on("error", () => socket.destroy());
        }
        client.pipe(upstream);
        upstream.pipe(client);
        client.on("close", () => upstream.destroy());
        upstream.on("close", () => client.destroy());
      });
      s.once("error", reject);
      s.listen(port, "127.0.0.1", () => {
        const address = s.address();
        if (typeof address === "object" && address) port = address.port;
        server = s;
        resolve();
      });
    });
  const stop = async () => {
    const s = server;
    server = undefined;
    for (const socket of sockets) socket.resetAndDestroy();
    sockets.clear();
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  };
  await listen();
  return {
    get url() {
      return `http://127.0.0.1:${port}${path}`;
    },
    get port() {
      return port;
    },
    down: stop,
    up: listen,
    close: stop,
  };
}
