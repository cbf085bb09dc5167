import { join } from "node:path";
import { createBackend } from "./backends/index.ts";
import type { ServeConfig } from "./config.ts";
import { Driver } from "./core/driver.ts";
import { MountRefs } from "./core/mount-refs.ts";
import type { Logger } from "./logging.ts";
import { createApp } from "./protocol/app.ts";
import { MAX_BODY_BYTES } from "./protocol/body.ts";
import { bridgeInheritedSocket, inheritedListenFd } from "./protocol/activation.ts";
import { ListenError, listenTcp } from "./protocol/tcp-listener.ts";
import { listenUnix } from "./protocol/unix-listener.ts";
import { resolveAccountId } from "./system/accounts.ts";
import { DEFAULTS, UsageError } from "./config.ts";

export interface RunningService {
  readonly driver: Driver;
  /** Where the plugin answers: the socket path, or https://HOST:PORT / tcp://HOST:PORT. */
  readonly address: string;
  /** Stops serving, removes the socket, releases the state database. Idempotent. */
  stop(): Promise<void>;
}

/** Wires backend, state, driver, router and socket: everything `serve` runs. */
export async function startService(config: ServeConfig, log: Logger): Promise<RunningService> {
  const gid = await resolveAccountId("group", config.socketGroup);
  if (gid === undefined) throw new Error(`socket group ${JSON.stringify(config.socketGroup)} does not exist`);

  const backend = await createBackend(config, log);
  await backend.init();
  const refs = MountRefs.open({
    stateDir: config.stateDir,
    onQuarantine: (from, to, cause) =>
      log.error(`mount state ${from} was unreadable and moved to ${to}; starting with no recorded mounts`, {
        error: String(cause),
      }),
  });
  const driver = new Driver(backend, refs, { timeoutMs: config.timeoutMs, scope: config.scope });
  const app = createApp(driver, log.withTag("protocol"));
  const common = {
    fetch: app.fetch,
    idleTimeoutSeconds: DEFAULTS.idleTimeoutSeconds,
    // Far above our own limit: our handler refuses a declared size over it without
    // reading the body, and counts chunked ones; Bun's own refusal carries no {"Err"}.
    maxRequestBodySize: MAX_BODY_BYTES * 1024,
  };
  let listener: { stop(): Promise<void> };
  let address: string;
  try {
    const inherited = inheritedListenFd(process.env);
    if (config.listen) {
      const tcp = listenTcp({ ...common, ...config.listen });
      listener = tcp;
      address = tcp.url;
    } else if (inherited !== undefined) {
      // Socket activation: systemd owns the public socket; serve on a private one behind it.
      const privatePath = join(config.stateDir, "activated.sock");
      const inner = await listenUnix({ ...common, path: privatePath, gid: 0 });
      const bridge = await bridgeInheritedSocket(inherited, privatePath).catch(async (error: unknown) => {
        await inner.stop();
        throw error;
      });
      listener = {
        async stop() {
          await bridge.stop();
          await inner.stop();
        },
      };
      address = `the socket inherited from systemd (fd ${inherited})`;
    } else {
      listener = await listenUnix({ ...common, path: config.socketPath, gid });
      address = config.socketPath;
    }
  } catch (error) {
    refs.close();
    await backend.close();
    if (error instanceof ListenError) throw new UsageError(error.message);
    throw error;
  }

  let stopping: Promise<void> | undefined;
  return {
    driver,
    address,
    stop() {
      stopping ??= (async () => {
        await listener.stop();
        refs.close();
        await backend.close();
      })();
      return stopping;
    },
  };
}
