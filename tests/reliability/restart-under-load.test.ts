// Restart under load: the plugin is stopped with SIGTERM and started again while
// engine-shaped clients send Mount, Get and Unmount without pause, once on the plugin's
// own socket and once under systemd-socket-activate (a holder keeps the listening socket
// and starts the plugin again, as systemd does). Every answer must be right, requests in
// flight at SIGTERM are answered before the process exits, and under socket activation
// no connection is refused: they wait in the backlog. The longest wait is printed.
// The root is a real FUSE filesystem (bindfs) checked with --mount-check mountpoint.

import { afterAll, afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { mountAt } from "../../src/system/mountinfo.ts";
import { runArgv } from "../e2e/support/engine.ts";
import { makeTempDir, removeTempDir } from "../support/tmp.ts";
import { type Child, Children, engineRequest, RawConn, Rng, type ServeLayout, serveArgv, sleep, suiteSeed, waitServing } from "./support.ts";

const SEED = suiteSeed("restart-under-load", 0x5eed0009);
const RESTARTS = 6;
const CLIENTS = 4;
const HOLDER = join(import.meta.dir, "../support/respawn-activated.pl");
/** dockerd's plugin client retries a call whose connection failed for up to 30 s (callWithRetry). */
const ENGINE_RETRY_MS = 30_000;

const children = new Children();
let dir = "";
let source = "";
let layout: ServeLayout;
let bindfs: Child | undefined;

beforeEach(async () => {
  dir = await makeTempDir("dqp-restart-");
  source = join(dir, "backing");
  layout = { root: join(dir, "root"), state: join(dir, "state"), socket: join(dir, "p.sock") };
  mkdirSync(source);
  mkdirSync(layout.root);
  bindfs = children.spawn(["bindfs", "-f", source, layout.root]);
  const deadline = Date.now() + 10_000;
  while (!(await mountAt(layout.root)) && Date.now() < deadline) await sleep(20);
  expect(await mountAt(layout.root)).toBeDefined();
});

afterEach(async () => {
  if (bindfs) process.kill(bindfs.pid, "SIGCONT");
  await children.stopAll();
  while (await mountAt(layout.root)) await runArgv(["umount", "-l", layout.root]);
  await removeTempDir(dir);
});

afterAll(() => children.stopAll());

const ARGS = ["--mount-check", "mountpoint", "--timeout", "20"];

/** How the plugin is run and restarted. */
interface Runner {
  readonly socket: string;
  start(): Promise<void>;
  /** SIGTERM to the plugin; resolves with its exit status once it is gone and a new one was started. */
  restart(): Promise<{ exit: number | null; drainMs: number }>;
}

/** The plugin on its own socket, started again by the test. */
function ownSocket(): Runner {
  let child: Child | undefined;
  const start = async () => {
    child = children.spawn(serveArgv(layout, ARGS));
    await waitServing(children, child, layout.socket);
  };
  return {
    socket: layout.socket,
    start,
    async restart() {
      const old = child!;
      const sent = performance.now();
      process.kill(old.pid, "SIGTERM");
      await old.exited;
      const drainMs = performance.now() - sent;
      await start();
      return { exit: old.exitCode, drainMs };
    },
  };
}

/** systemd-socket-activate holds the socket; the holder starts the plugin again when it exits. */
function socketActivated(): Runner {
  const socket = join(dir, "activated.sock");
  let holder: Child | undefined;
  let pid = 0;
  /** Holder lines already read; its output also carries the plugin's log lines. */
  let consumed = 0;
  const nextLine = async (prefix: "spawned" | "exited"): Promise<string[]> => {
    const deadline = performance.now() + 30_000;
    for (;;) {
      const events = children.log(holder!).split("\n").filter((line) => /^(spawned|exited) \d/.test(line));
      const line = events[consumed];
      if (line !== undefined) {
        consumed++;
        if (!line.startsWith(prefix)) throw new Error(`holder printed "${line}", expected "${prefix} ..."`);
        return line.split(" ");
      }
      if (performance.now() > deadline) throw new Error(`holder printed no "${prefix}" line: ${children.log(holder!).slice(-2000)}`);
      await sleep(5);
    }
  };
  return {
    socket,
    async start() {
      const started = children.spawn(["systemd-socket-activate", "-l", socket, "perl", HOLDER, ...serveArgv(layout, ARGS)]);
      holder = started;
      const deadline = Date.now() + 10_000;
      while (!existsSync(socket) && Date.now() < deadline) await sleep(20);
      // The first connection makes systemd-socket-activate start the holder.
      await waitServing(children, started, socket);
      pid = Number((await nextLine("spawned"))[1]);
      children.adopt(pid, "docker-quobyte-plugin");
    },
    async restart() {
      const sent = performance.now();
      process.kill(pid, "SIGTERM");
      const [, gone, status] = await nextLine("exited");
      const drainMs = performance.now() - sent;
      expect(Number(gone)).toBe(pid);
      pid = Number((await nextLine("spawned"))[1]);
      children.adopt(pid, "docker-quobyte-plugin");
      // Serving (its SIGTERM handler in place) before the next restart, as in ownSocket().
      await waitServing(children, holder!, socket);
      // perl's $?: exit code in the high byte, a signal in the low bits.
      const code = Number(status);
      return { exit: code & 0x7f ? null : code >> 8, drainMs };
    },
  };
}

/** What an engine-shaped client went through. */
interface Tally {
  requests: number;
  /** Connections refused: no plugin listened. */
  refused: number;
  /** Connections closed before any byte of a reply (the request was not read; dockerd retries). */
  closedUnanswered: number;
  longestWaitMs: number;
  problems: string[];
}

/**
 * dockerd's plugin client: one keep-alive connection, and a call whose connection fails
 * before any reply is retried for up to 30 s. A reply cut in the middle, an invalid one,
 * or none within the deadline is a failure.
 */
class RetryingEngine {
  private readonly conn: RawConn;

  constructor(
    socket: string,
    private readonly tally: Tally,
  ) {
    this.conn = new RawConn(socket, { pollMs: 100 });
  }

  async call(method: string, body: unknown): Promise<{ status: number; json: any; retries: number }> {
    const request = engineRequest(method, Buffer.from(`${JSON.stringify(body)}\n`));
    const started = performance.now();
    this.tally.requests++;
    for (let retries = 0; ; retries++) {
      const out = await this.conn.exchange(request, { timeoutMs: 25_000 });
      const waited = performance.now() - started;
      this.tally.longestWaitMs = Math.max(this.tally.longestWaitMs, waited);
      if (out.kind === "reply") return { status: out.reply.status, json: JSON.parse(out.reply.body.toString("utf8")), retries };
      if (out.kind === "unsent") this.tally.refused++;
      else if (out.kind === "closed" && out.received.length === 0) this.tally.closedUnanswered++;
      else throw new Error(`${method} ${JSON.stringify(body)}: ${out.kind} after ${Math.round(waited)} ms`);
      if (waited > ENGINE_RETRY_MS) throw new Error(`${method} ${JSON.stringify(body)}: no plugin answered within ${ENGINE_RETRY_MS} ms`);
      await sleep(retries < 10 ? 2 : 20);
    }
  }

  close(): void {
    this.conn.close();
  }
}

/** Mount, Get, Unmount, Get on the client's own volume, checking every answer against the model. */
async function client(c: number, socket: string, tally: Tally, stop: () => boolean): Promise<void> {
  const engine = new RetryingEngine(socket, tally);
  const name = `load-${c}`;
  const expectReply = (what: string, got: { status: number; json: any }, wanted: unknown) => {
    if (got.status !== 200 || JSON.stringify(got.json) !== JSON.stringify(wanted)) {
      tally.problems.push(`client ${c}: ${what}: ${got.status} ${JSON.stringify(got.json)}, expected ${JSON.stringify(wanted)}`);
    }
  };
  try {
    const created = await engine.call("VolumeDriver.Create", { Name: name, Opts: null });
    expectReply("Create", created, {});
    for (let seq = 0; !stop(); seq++) {
      const id = `${c}-${seq}`.padStart(64, "0");
      expectReply("Mount", await engine.call("VolumeDriver.Mount", { Name: name, ID: id }), { Mountpoint: join(layout.root, name) });
      const held = await engine.call("VolumeDriver.Get", { Name: name });
      // A Mount carried out twice (its reply lost, the request sent again) would count 2.
      if (held.json?.Volume?.Status?.mounts !== 1) tally.problems.push(`client ${c}: Get while mounted: ${JSON.stringify(held.json)}`);
      expectReply("Unmount", await engine.call("VolumeDriver.Unmount", { Name: name, ID: id }), {});
      const free = await engine.call("VolumeDriver.Get", { Name: name });
      if (free.json?.Volume?.Status?.mounts !== 0) tally.problems.push(`client ${c}: Get after Unmount: ${JSON.stringify(free.json)}`);
    }
  } catch (error) {
    tally.problems.push(`client ${c}: ${String(error)}`);
  } finally {
    engine.close();
  }
}

const MODES = [
  ["on its own socket", ownSocket],
  ["under systemd-socket-activate", socketActivated],
] as const;

describe("SIGTERM and restart under an engine-shaped load", () => {
  for (const [mode, makeRunner] of MODES) {
    test(`${mode}: every answer is right, nothing in flight is lost`, async () => {
      const rng = new Rng(SEED);
      const runner = makeRunner();
      await runner.start();
      const tally: Tally = { requests: 0, refused: 0, closedUnanswered: 0, longestWaitMs: 0, problems: [] };
      let stopping = false;
      const clients = Array.from({ length: CLIENTS }, (_, c) => client(c, runner.socket, tally, () => stopping));
      const drains: number[] = [];
      try {
        for (let r = 0; r < RESTARTS; r++) {
          await sleep(rng.int(100, 400));
          const { exit, drainMs } = await runner.restart();
          drains.push(drainMs);
          if (exit !== 0) tally.problems.push(`restart ${r}: the plugin exited with ${exit} after SIGTERM`);
        }
        await sleep(200);
      } finally {
        stopping = true;
        await Promise.all(clients);
      }
      console.log(
        `[restart-under-load] ${mode}, seed ${SEED}: ${RESTARTS} SIGTERM restarts under ${CLIENTS} clients; ${tally.requests} requests, ` +
          `longest wait ${Math.round(tally.longestWaitMs)} ms; connections refused ${tally.refused}, closed before a reply ${tally.closedUnanswered}; ` +
          `SIGTERM to exit max ${Math.round(Math.max(...drains))} ms`,
      );
      expect(tally.problems).toEqual([]);
      expect(tally.requests).toBeGreaterThan(RESTARTS * CLIENTS);
      // No request is written into a connection that is about to close: its last reply
      // says so (Connection: close). Under socket activation no connection is refused
      // either: they wait in the backlog of the socket systemd holds. So no request fails,
      // not even one that the engine would retry.
      expect(tally.closedUnanswered).toBe(0);
      if (runner.socket !== layout.socket) expect(tally.refused).toBe(0);
    }, 120_000);

    test(`${mode}: a Mount in flight at SIGTERM is answered on its connection, and counted after the restart`, async () => {
      const runner = makeRunner();
      await runner.start();
      const tally: Tally = { requests: 0, refused: 0, closedUnanswered: 0, longestWaitMs: 0, problems: [] };
      const engine = new RetryingEngine(runner.socket, tally);
      try {
        expect((await engine.call("VolumeDriver.Create", { Name: "slow", Opts: null })).json).toEqual({});
        // A frozen root holds the Mount inside its storage probe while SIGTERM arrives.
        process.kill(bindfs!.pid, "SIGSTOP");
        const mounting = engine.call("VolumeDriver.Mount", { Name: "slow", ID: "s".repeat(64) });
        await sleep(300);
        const restarted = runner.restart();
        await sleep(300);
        process.kill(bindfs!.pid, "SIGCONT");
        const mounted = await mounting;
        expect({ ...mounted, retries: mounted.retries }).toEqual({ status: 200, json: { Mountpoint: join(layout.root, "slow") }, retries: 0 });
        expect((await restarted).exit).toBe(0);
        const got = await engine.call("VolumeDriver.Get", { Name: "slow" });
        expect(got.json.Volume.Status.mounts).toBe(1);
        expect((await engine.call("VolumeDriver.Unmount", { Name: "slow", ID: "s".repeat(64) })).json).toEqual({});
      } finally {
        engine.close();
      }
    }, 60_000);
  }
});
