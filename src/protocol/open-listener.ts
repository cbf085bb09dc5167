import { join } from "node:path";
import { DEFAULTS, type ServeConfig } from "../config.ts";
import { bridgeInheritedSocket, inheritedListenFd } from "./activation.ts";
import { MAX_BODY_BYTES } from "./body.ts";
import { drainBoundMs, Draining } from "./drain.ts";
import { listenTcp } from "./tcp-listener.ts";
import { listenUnix } from "./unix-listener.ts";

export interface Listener {
  /** Where the plugin answers, for logs: a socket path or a URL. */
  readonly address: string;
  stop(): Promise<void>;
}

/**
 * Opens where the engine reaches the plugin: TCP (`--listen`), the socket systemd
 * handed over (socket activation), or our own Unix socket.
 */
export async function openListener(config: ServeConfig, fetch: (request: Request) => Response | Promise<Response>, gid: number): Promise<Listener> {
  const draining = new Draining();
  const common = {
    fetch: draining.wrap(fetch),
    draining,
    idleTimeoutSeconds: DEFAULTS.idleTimeoutSeconds,
    // Far above our own limit: our handler refuses a declared size over it without
    // reading the body, and counts chunked ones; Bun's own refusal carries no {"Err"}.
    maxRequestBodySize: MAX_BODY_BYTES * 1024,
    drainMs: drainBoundMs(config.timeoutMs),
  };
  if (config.listen) {
    const tcp = listenTcp({ ...common, ...config.listen });
    return { address: tcp.url, stop: () => tcp.stop() };
  }
  const inherited = inheritedListenFd(process.env);
  if (inherited !== undefined) {
    // systemd owns the public socket; serve on a private one behind it.
    const privatePath = join(config.stateDir, "activated.sock");
    const inner = await listenUnix({ ...common, path: privatePath, gid: 0 });
    const bridge = await bridgeInheritedSocket(inherited, privatePath).catch(async (error: unknown) => {
      await inner.stop();
      throw error;
    });
    return {
      address: `the socket inherited from systemd (fd ${inherited})`,
      async stop() {
        // Stop accepting first: new connections wait in the backlog of the socket systemd
        // holds, for the next start. Then the server answers what is in flight and closes
        // idle connections; the bridge ends each spliced connection as its server side ends.
        const spliced = bridge.stopAccepting(common.drainMs);
        await draining.begin();
        await inner.stop();
        await spliced;
      },
    };
  }
  const unix = await listenUnix({ ...common, path: config.socketPath, gid });
  return { address: config.socketPath, stop: () => unix.stop() };
}
