import { defineCommand } from "citty";
import { resolveServeConfig } from "../config.ts";
import { createLogger } from "../logging.ts";
import { startService } from "../service.ts";
import { assertKnownArgs, backendArgs, commonArgs } from "./args.ts";
import { waitForShutdownSignal } from "./signals.ts";

const args = {
  ...backendArgs,
  "state-dir": {
    type: "string",
    description: "Directory for this host's plugin state (default /var/lib/docker-quobyte-plugin)",
    valueHint: "DIR",
  },
  name: { type: "string", description: "Driver name: the socket is /run/docker/plugins/<name>.sock", valueHint: "quobyte" },
  socket: { type: "string", description: "Socket path (overrides --name's default path)", valueHint: "PATH" },
  group: { type: "string", description: "Group allowed to use the socket (env SOCKET_GROUP; default root)", valueHint: "GROUP" },
  timeout: { type: "string", description: "Deadline of each volume operation in seconds (default 30)", valueHint: "SECONDS" },
  ...commonArgs,
} as const;

export default defineCommand({
  meta: { name: "serve", description: "Serve the Docker volume plugin protocol on a Unix socket" },
  args,
  async run({ args: parsed, rawArgs }) {
    assertKnownArgs(rawArgs, args);
    const config = resolveServeConfig(parsed, process.env);
    const log = createLogger({ level: config.logLevel, format: config.logFormat });
    const service = await startService(config, log);
    log.info(`serving driver ${JSON.stringify(config.driverName)} on ${service.socketPath}`, {
      backend: config.backend,
      path: config.path,
      scope: service.driver.scope,
      stateDir: config.stateDir,
    });
    const signal = await waitForShutdownSignal();
    log.info(`received ${signal}; stopping`);
    await service.stop();
    log.info("stopped; socket removed");
  },
});
