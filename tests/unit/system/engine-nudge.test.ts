// The engine nudge against a stand-in for the Docker engine API on a real Unix socket:
// it answers the two calls the nudge makes (an events stream that stays open while the
// "engine" runs, and the volume listing), and can stop and come back like dockerd restarting.
// The swarm e2e (tests/e2e/swarm.test.ts) proves the same against real engines.

import { afterEach, describe, expect, test } from "bun:test";
import { heapStats } from "bun:jsc";
import { existsSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { UsageError } from "../../../src/config.ts";
import { createLogger, type LogSink } from "../../../src/logging.ts";
import { DEFAULT_ENGINE_SOCKET, type EngineNudge, engineSocketFromFlag, startEngineNudge } from "../../../src/system/engine-nudge.ts";
import { makeTempDir, removeTempDir } from "../../support/tmp.ts";

interface FakeEngine {
  /** Query strings of every volume listing, in order. */
  readonly listings: string[];
  /** Answer listings with this HTTP status (200: an empty listing). */
  listingStatus: number;
  /** Stops like a dying dockerd: open streams are cut and the socket goes away. */
  stop(): Promise<void>;
}

/**
 * Raw HTTP on purpose: dockerd sends the events stream's headers at once and then no body
 * bytes at all, which a higher-level server would hold back until its first chunk.
 */
function startFakeEngine(socketPath: string): FakeEngine {
  const listings: string[] = [];
  const sockets = new Set<Socket>();
  const reply = (socket: Socket, status: number, body: unknown): void => {
    const text = JSON.stringify(body);
    socket.end(`HTTP/1.1 ${status} X\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`);
  };
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    let head = "";
    socket.on("data", (chunk: Buffer) => {
      head += chunk.toString("latin1");
      if (!head.includes("\r\n\r\n")) return;
      const target = head.split(" ")[1] ?? "/";
      head = "";
      const url = new URL(target, "http://docker");
      if (url.pathname === "/events") {
        socket.write("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
      } else if (url.pathname === "/volumes") {
        listings.push(decodeURIComponent(url.search));
        if (engine.listingStatus === 200) reply(socket, 200, { Volumes: [], Warnings: null });
        else reply(socket, engine.listingStatus, { message: "driver lookup failed" });
      } else {
        reply(socket, 404, { message: "page not found" });
      }
    });
  });
  server.listen(socketPath);
  const engine: FakeEngine = {
    listings,
    listingStatus: 200,
    async stop() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      rmSync(socketPath, { force: true });
    },
  };
  return engine;
}

let dir = "";
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  if (dir) await removeTempDir(dir);
  dir = "";
});

async function setup(): Promise<{ socketPath: string; logs: string[]; start: () => EngineNudge; engine: () => FakeEngine }> {
  dir = await makeTempDir("dqp-nudge-");
  const socketPath = join(dir, "docker.sock");
  const logs: string[] = [];
  const sink: LogSink = { write: (line) => logs.push(line) };
  const log = createLogger({ level: "debug", format: "json", sink });
  return {
    socketPath,
    logs,
    start: () => {
      const nudge = startEngineNudge({ socketPath, driverName: "quobyte", log, retryMs: 50 });
      cleanups.push(() => nudge.stop());
      return nudge;
    },
    engine: () => {
      const engine = startFakeEngine(socketPath);
      cleanups.push(() => engine.stop());
      return engine;
    },
  };
}

async function until(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(10);
  }
}

describe("engine nudge", () => {
  test("asks a running engine for this driver's volumes once, and not again while it runs", async () => {
    const { start, engine: startEngine, logs } = await setup();
    const engine = startEngine();
    const nudge = start();
    await until(() => nudge.nudges === 1, "the first nudge");
    expect(engine.listings).toEqual([`?filters=${JSON.stringify({ driver: ["quobyte"] })}`]);
    await Bun.sleep(300);
    expect(engine.listings.length).toBe(1);
    expect(logs.join("")).toContain('now knows driver \\"quobyte\\"');
  });

  test("an engine that starts after the plugin is nudged once it answers", async () => {
    const { start, engine: startEngine, socketPath } = await setup();
    const nudge = start();
    await Bun.sleep(200);
    expect(existsSync(socketPath)).toBe(false);
    expect(nudge.nudges).toBe(0);
    const engine = startEngine();
    await until(() => nudge.nudges === 1, "the nudge after the engine appeared");
    expect(engine.listings.length).toBe(1);
  });

  test("every engine restart earns a new nudge", async () => {
    const { start, engine: startEngine, logs } = await setup();
    const first = startEngine();
    const nudge = start();
    await until(() => nudge.nudges === 1, "the first nudge");
    await first.stop();
    await until(() => logs.join("").includes("stopped; will tell it about the driver again"), "the stop to be seen");
    const second = startEngine();
    await until(() => nudge.nudges === 2, "the nudge after the restart");
    expect(second.listings.length).toBe(1);
    // A second restart too: the watch goes on.
    await second.stop();
    const third = startEngine();
    await until(() => nudge.nudges === 3, "the nudge after the second restart");
    expect(third.listings.length).toBe(1);
  });

  test("a failing listing is retried until the engine answers it, with one warning", async () => {
    const { start, engine: startEngine, logs } = await setup();
    const engine = startEngine();
    engine.listingStatus = 500;
    const nudge = start();
    await until(() => engine.listings.length >= 3, "three attempts");
    expect(nudge.nudges).toBe(0);
    const warnings = logs.map((line) => JSON.parse(line) as { level: string; msg: string }).filter((entry) => entry.level === "warn");
    expect(warnings.length).toBe(1);
    expect(warnings[0]?.msg).toContain("could not tell the Docker engine");
    engine.listingStatus = 200;
    await until(() => nudge.nudges === 1, "the nudge once listings work");
  });

  test("stop ends the watch at once, whether the engine runs or is absent", async () => {
    const running = await setup();
    running.engine();
    const nudge = running.start();
    await until(() => nudge.nudges === 1, "the first nudge");
    const started = performance.now();
    await nudge.stop();
    await nudge.stop();
    // Not a speed target: the bound only tells "returned" from "waited out the stream or a retry".
    expect(performance.now() - started).toBeLessThan(5_000);

    const absent = startEngineNudge({
      socketPath: join(dir, "nothing-here.sock"),
      driverName: "quobyte",
      log: createLogger({ level: "silent", format: "json" }),
      retryMs: 60_000,
    });
    await Bun.sleep(50);
    const stopping = performance.now();
    await absent.stop();
    expect(performance.now() - stopping).toBeLessThan(5_000);
  });
});

describe("engine nudge while the engine stays away", () => {
  test("retries leave no timer or promise behind (a 10-minute soak found one of each per retry)", async () => {
    dir = await makeTempDir("dqp-nudge-");
    const countTimers = () => {
      Bun.gc(true);
      return heapStats().objectTypeCounts.Timeout ?? 0;
    };
    const nudge = startEngineNudge({
      socketPath: join(dir, "nothing-here.sock"),
      driverName: "quobyte",
      log: createLogger({ level: "silent", format: "json" }),
      retryMs: 2,
    });
    cleanups.push(() => nudge.stop());
    await Bun.sleep(100);
    const early = countTimers();
    // Hundreds of retries more.
    await Bun.sleep(1_000);
    expect(countTimers()).toBeLessThanOrEqual(early + 2);
  });
});

describe("--engine-socket", () => {
  test("defaults to the engine's socket, 'none' turns the nudge off, a relative path is refused", () => {
    expect(engineSocketFromFlag(undefined)).toBe(DEFAULT_ENGINE_SOCKET);
    expect(engineSocketFromFlag("/var/run/docker.sock")).toBe("/var/run/docker.sock");
    expect(engineSocketFromFlag("none")).toBeUndefined();
    expect(() => engineSocketFromFlag("docker.sock")).toThrow(UsageError);
    expect(() => engineSocketFromFlag("")).toThrow(/absolute socket path/);
  });
});
