// Makes the local Docker engine look this legacy plugin up, so that it reports the driver
// to the Swarm scheduler. An engine only knows a socket-discovered plugin after something
// asked it for one of its volumes (`docker volume ls`, a container using it, the restore at
// engine start); until then a service with `volume-driver=<name>` stays "Pending: no
// suitable node (missing plugin ...)". Every engine start forgets the lookup again.
//
// So: hold an events stream to the engine open (it ends when the engine stops), and each
// time it opens, ask the engine for our driver's volumes (as `docker volume ls --filter
// driver=<name>`; dockerd 20.10 looks up every socket-discovered plugin for it, which is
// harmless and helps plugins beside us too). The stream is filtered to daemon
// events, which are rare, so an idle engine costs nothing but one open connection. While
// the engine is absent, its socket is tried again every few seconds.

import { UsageError } from "../config.ts";
import { messageOf } from "../core/errors.ts";
import type { Logger } from "../logging.ts";

export const DEFAULT_ENGINE_SOCKET = "/run/docker.sock";
/** `--engine-socket none` turns the nudge off. */
export const ENGINE_SOCKET_OFF = "none";

export interface EngineNudgeOptions {
  /** The engine's API socket. */
  socketPath: string;
  driverName: string;
  log: Logger;
  /** Wait between attempts while the engine does not answer (ms). */
  retryMs?: number;
  /** Deadline of the volume listing that does the nudge (ms). */
  requestTimeoutMs?: number;
}

export interface EngineNudge {
  /** How many times the engine has been told about the driver so far. */
  readonly nudges: number;
  /** Ends the watch and closes the events stream. Idempotent. */
  stop(): Promise<void>;
}

const DEFAULT_RETRY_MS = 3_000;
// The engine answers a listing after asking every matching driver; ours answers well within its
// own --timeout, the engine gives a plugin 60 s.
const DEFAULT_REQUEST_TIMEOUT_MS = 70_000;

/** `--engine-socket` as given: undefined (off) for "none", else an absolute socket path. */
export function engineSocketFromFlag(value: string | undefined): string | undefined {
  if (value === undefined) return DEFAULT_ENGINE_SOCKET;
  if (value === ENGINE_SOCKET_OFF) return undefined;
  if (!value.startsWith("/")) {
    throw new UsageError(`--engine-socket ${JSON.stringify(value)} must be an absolute socket path, or "${ENGINE_SOCKET_OFF}" to turn the engine nudge off`);
  }
  return value;
}

export function startEngineNudge(options: EngineNudgeOptions): EngineNudge {
  const { socketPath, driverName, log } = options;
  const retryMs = options.retryMs ?? DEFAULT_RETRY_MS;
  const requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const stopper = new AbortController();
  let nudges = 0;
  // Say once that the engine is away, not every few seconds.
  let reportedAbsent = false;
  let failedBefore = false;

  const openEvents = async (): Promise<Response | undefined> => {
    const filters = encodeURIComponent(JSON.stringify({ type: ["daemon"] }));
    try {
      // No idle timeout: the stream is silent for as long as the engine runs.
      const response = await fetch(`http://docker/events?filters=${filters}`, { unix: socketPath, signal: stopper.signal, timeout: false });
      if (response.ok && response.body) return response;
      await response.body?.cancel();
      throw new Error(`events answered HTTP ${response.status}`);
    } catch (error) {
      if (stopper.signal.aborted) return undefined;
      if (!reportedAbsent) log.debug(`no Docker engine answers on ${socketPath} yet; trying every ${retryMs / 1000} s`, { error: messageOf(error) });
      reportedAbsent = true;
      return undefined;
    }
  };

  const nudge = async (): Promise<void> => {
    // The filter keeps the answer small; the lookup it causes is what matters.
    const filters = encodeURIComponent(JSON.stringify({ driver: [driverName] }));
    const signal = AbortSignal.any([stopper.signal, AbortSignal.timeout(requestTimeoutMs)]);
    const response = await fetch(`http://docker/volumes?filters=${filters}`, { unix: socketPath, signal });
    const body = await response.text();
    if (!response.ok) throw new Error(`listing volumes answered HTTP ${response.status}: ${body.trim().slice(0, 300)}`);
    nudges += 1;
    reportedAbsent = false;
    failedBefore = false;
    log.info(`the Docker engine on ${socketPath} now knows driver ${JSON.stringify(driverName)} (Swarm can place tasks using it here)`);
  };

  const untilEngineStops = async (events: Response): Promise<void> => {
    const reader = events.body?.getReader();
    if (!reader) return;
    try {
      while (!(await reader.read()).done) {
        // Daemon events (a config reload) change nothing for us; only the end of the stream does.
      }
    } catch {
      // A reset connection is the engine going away too.
    } finally {
      reader.releaseLock();
    }
  };

  // The abort listener goes when the pause ends: one left behind per retry would keep its
  // timer and promise alive for as long as the engine stays away (a leak of both).
  const pause = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const onStop = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        stopper.signal.removeEventListener("abort", onStop);
        resolve();
      }, ms);
      stopper.signal.addEventListener("abort", onStop, { once: true });
    });

  const watch = async (): Promise<void> => {
    while (!stopper.signal.aborted) {
      // Open the stream before the nudge: an engine restart in between then ends the stream
      // and earns a new nudge, instead of slipping by unseen.
      const events = await openEvents();
      if (!events) {
        await pause(retryMs);
        continue;
      }
      try {
        await nudge();
      } catch (error) {
        await events.body?.cancel().catch(() => {});
        if (stopper.signal.aborted) break;
        const detail = { error: messageOf(error) };
        if (failedBefore) log.debug(`telling the Docker engine about the driver failed again; retrying`, detail);
        else log.warn(`could not tell the Docker engine on ${socketPath} about driver ${JSON.stringify(driverName)}; retrying every ${retryMs / 1000} s`, detail);
        failedBefore = true;
        await pause(retryMs);
        continue;
      }
      await untilEngineStops(events);
      if (!stopper.signal.aborted) log.info(`the Docker engine on ${socketPath} stopped; will tell it about the driver again when it is back`);
    }
  };

  const watching = watch();
  return {
    get nudges() {
      return nudges;
    },
    async stop() {
      stopper.abort();
      await watching;
    },
  };
}
