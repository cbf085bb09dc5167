import { createBackend } from "./backends/index.ts";
import type { ServeConfig } from "./config.ts";
import { withDeadline } from "./core/deadline.ts";
import { Driver } from "./core/driver.ts";
import { messageOf } from "./core/errors.ts";
import { MountRefs } from "./core/mount-refs.ts";
import type { Logger } from "./logging.ts";
import { backendDependencies, HealthTracker } from "./core/health.ts";
import { createApp } from "./protocol/app.ts";
import { type Listener, openListener } from "./protocol/open-listener.ts";
import { ListenError } from "./protocol/tcp-listener.ts";
import { requireSocketGroup } from "./system/accounts.ts";
import { UsageError } from "./config.ts";

/** How long a stop waits for the backend after the drain: the whole stop is the drain bound plus this. */
export const CLOSE_BOUND_MS = 5000;

export interface RunningService {
  readonly driver: Driver;
  /** Probes the dependencies for /health and logs their failures; started by the caller. */
  readonly health: HealthTracker;
  /** Where the plugin answers: the socket path, or https://HOST:PORT / tcp://HOST:PORT. */
  readonly address: string;
  /** Stops serving, removes the socket, releases the state database. Idempotent. */
  stop(): Promise<void>;
}

/** Wires backend, state, driver, router and socket: everything `serve` runs. */
export async function startService(config: ServeConfig, log: Logger): Promise<RunningService> {
  const gid = await requireSocketGroup(config.socketGroup);

  // The state first: by default the volume root lies inside the state dir, and the
  // backend's recursive mkdir would otherwise make the state dir 0755 instead of 0700.
  const refs = MountRefs.open({
    stateDir: config.stateDir,
    onQuarantine: (from, to, cause) =>
      log.error(`mount state ${from} was unreadable and moved to ${to}; starting with no recorded mounts`, {
        error: String(cause),
      }),
  });
  const backend = await createBackend(config, log).catch((error: unknown) => {
    refs.close();
    throw error;
  });
  await backend.init().catch(async (error: unknown) => {
    refs.close();
    await backend.close();
    throw error;
  });
  const driver = new Driver(backend, refs, { timeoutMs: config.timeoutMs, scope: config.scope });
  const health = new HealthTracker(backendDependencies(backend), (name, now) => {
    if (now.ok) log.info(`${name} is ${now.state} again`, { dependency: name });
    else log.error(`${name} is ${now.state}: ${now.detail}`, { dependency: name });
  });
  const app = createApp(driver, log.withTag("protocol"), health);
  let listener: Listener;
  try {
    listener = await openListener(config, app.fetch, gid);
  } catch (error) {
    health.stop();
    refs.close();
    await backend.close();
    if (error instanceof ListenError) throw new UsageError(error.message);
    throw error;
  }

  let stopping: Promise<void> | undefined;
  return {
    driver,
    health,
    address: listener.address,
    stop() {
      stopping ??= (async () => {
        health.stop();
        await listener.stop();
        refs.close();
        // Storage may hang; a SIGTERM must still end the process (systemd would SIGKILL it).
        await withDeadline(backend.close(), CLOSE_BOUND_MS, "closing the backend").catch((error: unknown) =>
          log.warn(`stopped without waiting for the backend: ${messageOf(error)}`),
        );
      })();
      return stopping;
    },
  };
}
