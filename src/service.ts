import { createBackend } from "./backends/index.ts";
import type { ServeConfig } from "./config.ts";
import { Claims } from "./core/claims.ts";
import { withDeadline } from "./core/deadline.ts";
import { Driver } from "./core/driver.ts";
import { messageOf } from "./core/errors.ts";
import { MountRefs } from "./core/mount-refs.ts";
import type { Backend } from "./core/types.ts";
import type { Logger } from "./logging.ts";
import { backendDependencies, HealthTracker } from "./core/health.ts";
import { createApp, type RequestActivity } from "./protocol/app.ts";
import { type Listener, openListener } from "./protocol/open-listener.ts";
import { inheritedListenFd } from "./protocol/activation.ts";
import { ListenError } from "./protocol/tcp-listener.ts";
import { socketIsLive } from "./protocol/unix-listener.ts";
import { requireSocketGroup } from "./system/accounts.ts";
import { IdleCollector } from "./system/idle-collector.ts";
import { UsageError } from "./config.ts";

/** How long a stop waits for the backend after the drain: the whole stop is the drain bound plus this. */
export const CLOSE_BOUND_MS = 5000;

export interface RunningService {
  readonly driver: Driver;
  /** Probes the dependencies for /health and logs their failures; started by the caller. */
  readonly health: HealthTracker;
  /** Where the plugin answers: the socket path, or https://HOST:PORT / tcp://HOST:PORT. */
  readonly address: string;
  /** Stops serving, removes the socket, releases the state directory. Idempotent. */
  stop(): Promise<void>;
}

/** A stop was asked for before the service was serving; what had started is stopped again. */
export class StoppedWhileStarting extends Error {
  constructor(readonly signal: string) {
    super(`received ${signal} while starting`);
  }
}

/**
 * Wires backend, state, driver, router and socket: everything `serve` runs. `stopRequested`
 * resolves with the signal's name: a stop asked for while the index still loads (storage
 * may hang there indefinitely) ends the start, closes the socket and throws StoppedWhileStarting.
 */
export async function startService(config: ServeConfig, log: Logger, stopRequested: Promise<string> = new Promise(() => {})): Promise<RunningService> {
  const gid = await requireSocketGroup(config.socketGroup);

  // A second plugin on the same socket would otherwise wait 5 s for the state directory
  // the first one holds before failing on it: name the real problem at once.
  if (!config.listen && inheritedListenFd(process.env) === undefined && (await socketIsLive(config.socketPath))) {
    throw new Error(`another process is already serving on ${config.socketPath}`);
  }
  const backend = await createBackend(config, log);
  const refs = MountRefs.open({
    stateDir: config.stateDir,
    onQuarantine: (from, to, cause) =>
      log.error(`mount state ${from} was unreadable and moved to ${to}; starting with no recorded mounts`, {
        error: String(cause),
      }),
  });
  // The socket opens before the backend has loaded its index (about 20 µs per volume):
  // the engine's first call, Activate, needs nothing loaded, and every other call waits
  // for the load, within the operation deadline. With a volume namespace shared by other
  // hosts (global scope) the load comes first: mount claims need it, and a restarted
  // host re-claims its mounts before it answers anything.
  let loaded = false;
  const loading = backend.init().then(() => {
    loaded = true;
  });
  loading.catch(() => {});
  const stopped = stopRequested.then((signal) => {
    throw new StoppedWhileStarting(signal);
  });
  stopped.catch(() => {});
  // What a stop or a failure while starting undoes, newest first.
  let health: HealthTracker | undefined;
  let driver: Driver | undefined;
  let listener: Listener | undefined;
  const undo = async (): Promise<void> => {
    // A backend is closed after its load ends, unless a stop says not to wait for it.
    await Promise.race([loading, stopped]).catch(() => {});
    health?.stop();
    await listener?.stop();
    await driver?.stopClaims();
    refs.close();
    await closeBackend(backend, log);
  };
  /** Waits for `step`, unless a stop comes first and `stoppable`; either failure undoes the start. */
  const startStep = async <T>(step: Promise<T>, stoppable = true): Promise<T> => {
    try {
      return await (stoppable ? Promise.race([step, stopped]) : step);
    } catch (error) {
      await undo();
      if (error instanceof ListenError) throw new UsageError(error.message);
      throw error;
    }
  };

  const shared = (config.scope ?? backend.scope) === "global";
  if (shared) await startStep(loading);
  const pending = () => (loaded ? undefined : withDeadline(loading, config.timeoutMs, "loading the volume index"));
  const claims = shared ? createClaims(config, backend, log) : undefined;
  driver = new Driver(backend, refs, { timeoutMs: config.timeoutMs, scope: config.scope, claims });
  health = new HealthTracker(backendDependencies(backend), (name, now) => {
    if (now.ok) log.info(`${name} is ${now.state} again`, { dependency: name });
    else log.error(`${name} is ${now.state}: ${now.detail}`, { dependency: name });
  });
  const activity: RequestActivity = { requests: 0 };
  const app = createApp(driver, log.withTag("protocol"), health, pending, activity);
  // Before the socket opens: a restarted host re-claims the mounts it recorded before
  // it answers anything, so its containers' volumes are never unclaimed while it runs.
  await startStep(driver.startClaims());
  // Not cut short by a stop: opening the socket is local and quick, and a socket that
  // opened after the stop was taken would be left behind, listening.
  listener = await startStep(openListener(config, app.fetch, gid), false);
  await startStep(loading);

  const idle = new IdleCollector({ activity: () => activity.requests }).start();
  // Narrowed copies for stop(): the variables above stay `| undefined` for TypeScript.
  const running = { driver, health, listener };
  let stopping: Promise<void> | undefined;
  return {
    driver,
    health,
    address: listener.address,
    stop() {
      stopping ??= (async () => {
        idle.stop();
        running.health.stop();
        await running.listener.stop();
        await running.driver.stopClaims();
        refs.close();
        await closeBackend(backend, log);
      })();
      return stopping;
    },
  };
}

/** Storage may hang; a SIGTERM must still end the process (systemd would SIGKILL it). */
async function closeBackend(backend: Backend, log: Logger): Promise<void> {
  await withDeadline(backend.close(), CLOSE_BOUND_MS, "closing the backend").catch((error: unknown) =>
    log.warn(`stopped without waiting for the backend: ${messageOf(error)}`),
  );
}

/** Claims only matter where other hosts share the volumes (global scope on shared storage). */
function createClaims(config: ServeConfig, backend: Backend, log: Logger): Claims | undefined {
  const scope = config.scope ?? backend.scope;
  const dir = backend.claimsDir;
  if (scope !== "global" || dir === undefined) return undefined;
  const claimsLog = log.withTag("claims");
  return new Claims({
    dir,
    hostId: config.hostId,
    leaseTimeoutMs: config.leaseTimeoutMs,
    warn: (message, fields) => claimsLog.warn(message, fields ?? {}),
  });
}
