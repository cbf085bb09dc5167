import type { Server } from "bun";

/**
 * Stops `server` gracefully: no new connections, every request in flight is answered
 * (Bun closes idle keep-alive connections at once), and whatever still runs after
 * `boundMs` is cut. The bound is the operation deadline, by which every request has its
 * answer anyway (at worst a TIMEOUT Err): a restart loses nothing the engine was told.
 */
export async function drainServer(server: Pick<Server<undefined>, "stop">, boundMs: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const bound = new Promise<"cut">((resolve) => {
    timer = setTimeout(() => resolve("cut"), boundMs);
  });
  try {
    const outcome = await Promise.race([server.stop().then(() => "drained" as const), bound]);
    if (outcome === "cut") await server.stop(true);
  } finally {
    clearTimeout(timer);
  }
}

/** The drain bound for the operation deadline (`--timeout`, always above 0): it plus 1 s. */
export function drainBoundMs(operationTimeoutMs: number): number {
  return operationTimeoutMs + 1000;
}

/** A keep-alive connection idle at SIGTERM may be sending a request right now: it gets this long. */
export const DRAIN_GRACE_MS = 100;

/**
 * The start of a graceful stop. From then on every reply says `Connection: close`, so no
 * client sends another request on a connection that is about to close (a request written
 * into a closing connection is lost to the client), and connections get a short grace to
 * deliver a request already under way before idle ones are closed.
 */
export class Draining {
  private started: Promise<void> | undefined;

  wrap(fetch: (request: Request) => Response | Promise<Response>): (request: Request) => Promise<Response> {
    return async (request) => {
      const response = await fetch(request);
      if (this.started) response.headers.set("Connection", "close");
      return response;
    };
  }

  /** Starts draining (once); resolves when the grace is over. */
  begin(): Promise<void> {
    this.started ??= Bun.sleep(DRAIN_GRACE_MS);
    return this.started;
  }
}
