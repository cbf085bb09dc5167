import type { Server, Socket } from "node:net";

/** systemd passes inherited sockets from this descriptor on (sd_listen_fds(3)). */
const SD_LISTEN_FDS_START = 3;

/**
 * The listening socket systemd handed us (socket activation), or undefined. Only when
 * LISTEN_PID names this process: the variables may be left over from a parent.
 */
export function inheritedListenFd(env: Record<string, string | undefined>, pid = process.pid): number | undefined {
  if (env.LISTEN_PID !== String(pid)) return undefined;
  const count = Number(env.LISTEN_FDS);
  return count >= 1 ? SD_LISTEN_FDS_START : undefined;
}

/**
 * Copies `from` to `to` with data events rather than stream pipes (a pipe costs a
 * measurable share of each request here), pausing `from` while `to` is full.
 */
function splice(from: Socket, to: Socket): void {
  from.on("data", (chunk: Buffer) => {
    if (!to.write(chunk)) {
      from.pause();
      to.once("drain", () => from.resume());
    }
  });
  from.on("end", () => to.end());
}

export interface Bridge {
  /**
   * Stops accepting (connections not yet accepted stay in the inherited socket's backlog)
   * and resolves once every spliced connection has ended; after `boundMs` the rest are cut.
   */
  stopAccepting(boundMs: number): Promise<void>;
}

/**
 * Accepts on the inherited socket and splices each connection to `target`, where the
 * plugin's HTTP server listens. Bun.serve cannot adopt an inherited descriptor, node:net
 * can; the splice keeps one HTTP implementation for every way of being reached.
 * `node:net` is loaded here, not at start: every other way of serving starts without it.
 */
export async function bridgeInheritedSocket(fd: number, target: string): Promise<Bridge> {
  const { connect, createServer } = await import("node:net");
  const connections = new Set<{ destroy(): void }>();
  const server: Server = createServer((client) => {
    const upstream = connect(target);
    for (const socket of [client, upstream]) {
      connections.add(socket);
      socket.on("close", () => connections.delete(socket));
    }
    // A failed side takes the other down at once; its bytes are lost anyway.
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
    // When the server closes (a drain says Connection: close), the client gets the rest of
    // the reply still queued here first: end() flushes, destroy() would cut it off.
    upstream.on("close", () => client.end());
    client.on("close", () => upstream.destroy());
    splice(client, upstream);
    splice(upstream, client);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ fd }, () => {
      server.off("error", reject);
      resolve({
        stopAccepting: (boundMs) =>
          new Promise<void>((done) => {
            const cut = setTimeout(() => {
              for (const connection of connections) connection.destroy();
            }, boundMs);
            server.close(() => {
              clearTimeout(cut);
              done();
            });
          }),
      });
    });
  });
}
