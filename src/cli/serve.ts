import { defineCommand } from "citty";
import { createLogger } from "../logging.ts";
import { redactUrl } from "../quobyte/rpc-client.ts";
import { type RunningService, startService, StoppedWhileStarting } from "../service.ts";
import { DEFAULT_ENGINE_SOCKET, engineSocketFromFlag, startEngineNudge } from "../system/engine-nudge.ts";
import { assertKnownArgs, backendArgs, claimArgs, commonArgs, configFromArgs, nameArg } from "./args.ts";
import { waitForShutdownSignal } from "./signals.ts";

/** How often dependencies are probed without requests, so a broken API is logged unprompted. */
const HEALTH_INTERVAL_MS = 30_000;

const args = {
  ...backendArgs,
  ...nameArg,
  ...claimArgs,
  socket: { type: "string", description: "Socket path (overrides --name's default path)", valueHint: "PATH" },
  group: { type: "string", description: "Group allowed to use the socket (env SOCKET_GROUP; default root)", valueHint: "GROUP" },
  timeout: { type: "string", description: "Deadline of each volume operation in seconds (default 30)", valueHint: "SECONDS" },
  "create-wait": {
    type: "string",
    description: "quobyte: how long Create waits for a new volume to appear in the mount, in seconds (default 20)",
    valueHint: "SECONDS",
  },
  "list-all": { type: "boolean", description: "quobyte: List shows every volume of the tenant, not only this plugin's" },
  "cache-ttl": {
    type: "string",
    description: "quobyte: a volume the API confirmed this recently is answered from the cache, in seconds (env QUOBYTE_CACHE_TTL, default 10)",
    valueHint: "SECONDS",
  },
  listen: {
    type: "string",
    description: "Serve on TCP instead of the Unix socket; plain HTTP only on loopback (pair with write-spec)",
    valueHint: "tcp://HOST:PORT",
  },
  "tls-cert": { type: "string", description: "With --listen: serve HTTPS with this certificate", valueHint: "FILE" },
  "tls-key": { type: "string", description: "With --listen: key of --tls-cert", valueHint: "FILE" },
  "tls-ca": { type: "string", description: "With --listen: clients must present a certificate signed by this CA", valueHint: "FILE" },
  "engine-socket": {
    type: "string",
    description: `Docker engine API socket, asked for this driver's volumes at start and after each engine restart so Swarm sees the plugin (default ${DEFAULT_ENGINE_SOCKET}; none: off)`,
    valueHint: "PATH|none",
  },
  ...commonArgs,
} as const;

export default defineCommand({
  meta: { name: "serve", description: "Serve the Docker volume plugin protocol on a Unix socket" },
  args,
  async run({ args: parsed, rawArgs }) {
    assertKnownArgs(rawArgs, args, parsed);
    const config = configFromArgs(parsed);
    const engineSocket = engineSocketFromFlag(parsed["engine-socket"]);
    const log = createLogger({ level: config.logLevel, format: config.logFormat });
    // Listening for the signal first: the socket answers while the backend still loads,
    // and a stop requested then must still remove it.
    const stopRequested = waitForShutdownSignal();
    let service: RunningService;
    try {
      service = await startService(config, log, stopRequested);
    } catch (error) {
      if (!(error instanceof StoppedWhileStarting)) throw error;
      // Storage that hangs the index load must not hold a stop: the socket is gone again.
      log.info(`${error.message}; stopped before serving`);
      return;
    }
    log.info(`serving driver ${JSON.stringify(config.driverName)} on ${service.address}`, {
      backend: config.backend,
      path: config.path,
      mountCheck: config.mountCheck,
      ...(config.quobyte ? { api: redactUrl(config.quobyte.apiUrl), tenant: config.quobyte.tenant, apiUser: config.quobyte.user } : {}),
      scope: service.driver.scope,
      stateDir: config.stateDir,
      engineSocket: engineSocket ?? "none",
    });
    // After the line above: the first failure logged is about a plugin known to be serving.
    service.health.start(HEALTH_INTERVAL_MS);
    const nudge = engineSocket === undefined ? undefined : startEngineNudge({ socketPath: engineSocket, driverName: config.driverName, log: log.withTag("engine") });
    const signal = await stopRequested;
    log.info(`received ${signal}; stopping`);
    await nudge?.stop();
    await service.stop();
    log.info(config.listen ? "stopped" : "stopped; socket removed");
  },
});
