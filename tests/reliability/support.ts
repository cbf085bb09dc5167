// Shared helpers of the reliability suites: a seeded PRNG, the compiled binary as a
// child process tracked by PID, an engine-shaped raw HTTP client that tells "never sent"
// from "cut off", and read-only inspection of the volume root.

import type { Subprocess } from "bun";
import { afterAll, afterEach, beforeEach } from "bun:test";
import { lstatSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { makeTempDir, removeTempDir } from "../support/tmp.ts";

/** The compiled binary under test (`bun run build`). */
export const BINARY = join(import.meta.dir, "../../dist/docker-quobyte-plugin");
export const CONTROL_DIR = ".docker-quobyte-plugin";

// ---------------------------------------------------------------------------------------
// Seeded PRNG

/** sfc32: small, fast, good enough to drive workloads; same seed, same sequence. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = 0xb7e15162;
    this.d = seed >>> 0;
    for (let i = 0; i < 16; i++) this.next();
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.a >>>= 0;
    this.b >>>= 0;
    this.c >>>= 0;
    this.d >>>= 0;
    let t = (this.a + this.b) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.d = (this.d + 1) | 0;
    t = (t + this.d) | 0;
    this.c = (this.c + t) | 0;
    return (t >>> 0) / 4294967296;
  }

  /** Integer in [min, max] (inclusive). */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error("pick from an empty list");
    return items[Math.floor(this.next() * items.length)] as T;
  }

  /** Picks a key by weight. */
  weighted<K extends string>(weights: Readonly<Record<K, number>>): K {
    const entries = Object.entries(weights) as [K, number][];
    let total = 0;
    for (const [, w] of entries) total += w;
    let x = this.next() * total;
    for (const [key, w] of entries) {
      x -= w;
      if (x < 0) return key;
    }
    return entries[entries.length - 1]![0];
  }

  hex(length: number): string {
    let out = "";
    for (let i = 0; i < length; i++) out += "0123456789abcdef"[this.int(0, 15)];
    return out;
  }

  bytes(length: number): Buffer {
    const out = Buffer.alloc(length);
    for (let i = 0; i < length; i++) out[i] = this.int(0, 255);
    return out;
  }

  /** A child generator, so that parallel actors have independent deterministic streams. */
  fork(salt: number): Rng {
    return new Rng((this.int(0, 0x7fffffff) ^ Math.imul(salt + 1, 0x9e3779b1)) >>> 0);
  }
}

/**
 * The seed of one suite: `RELIABILITY_SEED` when set (to replay a run), else a fixed
 * default, so that every run draws the same workload. Printed either way.
 */
export function suiteSeed(suite: string, fallback: number): number {
  const env = process.env.RELIABILITY_SEED;
  const seed = env !== undefined && env !== "" ? Number(env) >>> 0 : fallback;
  console.log(`[${suite}] seed ${seed} (replay with RELIABILITY_SEED=${seed})`);
  return seed;
}

// ---------------------------------------------------------------------------------------
// Child processes, always stopped by PID

export type Child = Subprocess<"ignore", "pipe", "pipe">;

/** Every process a suite started; `stopAll` kills what still runs, by PID, and waits. */
export class Children {
  private readonly live = new Set<Child>();
  private readonly logs = new Map<Child, string>();
  private readonly adopted = new Map<number, string>();

  spawn(argv: string[], options: { cwd?: string; env?: Record<string, string | undefined> } = {}): Child {
    const child = Bun.spawn(argv, {
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      cwd: options.cwd,
      env: options.env,
    }) as Child;
    this.live.add(child);
    this.logs.set(child, "");
    const collect = async (stream: ReadableStream<Uint8Array>) => {
      const decoder = new TextDecoder();
      try {
        for await (const chunk of stream) {
          // Keep the tail only: a long run logs a lot.
          const text = (this.logs.get(child) ?? "") + decoder.decode(chunk);
          this.logs.set(child, text.length > 200_000 ? text.slice(-100_000) : text);
        }
      } catch {
        // the pipe closed with the process
      }
    };
    void collect(child.stdout);
    void collect(child.stderr);
    void child.exited.then(() => this.live.delete(child));
    return child;
  }

  log(child: Child): string {
    return this.logs.get(child) ?? "";
  }

  /** Kills `child` by its PID with `signal` (unless it exited) and waits for it. */
  async stop(child: Child, signal: NodeJS.Signals = "SIGKILL"): Promise<number | null> {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(child.pid, signal);
      } catch {
        // exited meanwhile
      }
    }
    await child.exited;
    this.live.delete(child);
    return child.exitCode;
  }

  /**
   * Records a grandchild (e.g. the plugin under strace) so that `stopAll` kills it by PID
   * too; `match` must occur in its /proc/<pid>/cmdline, against PID reuse.
   */
  adopt(pid: number, match: string): void {
    this.adopted.set(pid, match);
  }

  async stopAll(): Promise<void> {
    // Direct children first: one may be a supervisor (the socket-activation holder) that
    // would start a new grandchild for each one killed before it.
    for (const child of [...this.live]) await this.stop(child, "SIGKILL");
    for (const [pid, match] of this.adopted) {
      if (cmdline(pid).includes(match)) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone
        }
      }
    }
    this.adopted.clear();
  }

  get running(): number {
    return this.live.size;
  }
}

/** The NUL-separated command line of a process, or "" when it is gone. */
export function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "latin1").replaceAll("\0", " ");
  } catch {
    return "";
  }
}

/** Direct children of a process (all its threads' children). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const text = readFileSync(`/proc/${pid}/task/${task}/children`, "latin1").trim();
      if (text) out.push(...text.split(/\s+/).map(Number));
    }
  } catch {
    // gone
  }
  return out;
}

export interface ServeLayout {
  root: string;
  state: string;
  socket: string;
}

export function serveArgv(layout: ServeLayout, extra: string[] = []): string[] {
  return [
    BINARY,
    "serve",
    "--backend",
    "posix",
    "--path",
    layout.root,
    "--state-dir",
    layout.state,
    "--socket",
    layout.socket,
    "--log-level",
    "warn",
    "--log-format",
    "json",
    ...extra,
  ];
}

/** True once something accepts connections on the socket and answers Activate. */
export async function answersActivate(socketPath: string, timeoutMs = 2000): Promise<boolean> {
  const conn = new EngineConn(socketPath, timeoutMs);
  try {
    const out = await conn.call("Plugin.Activate");
    return out.kind === "reply" && out.status === 200;
  } finally {
    conn.close();
  }
}

/**
 * True once volume calls are answered and the start-up probes are done: the socket answers
 * Activate while the backend is still loading, Capabilities waits for the load, and
 * GET /health for the first health probe (its API calls must not be taken for a
 * request's own).
 */
async function answersVolumeCalls(socketPath: string, timeoutMs: number): Promise<boolean> {
  const conn = new EngineConn(socketPath, timeoutMs);
  try {
    const out = await conn.call("VolumeDriver.Capabilities", {});
    if (out.kind !== "reply" || out.status !== 200) return false;
  } finally {
    conn.close();
  }
  const health = await fetch("http://plugin/health", { unix: socketPath, signal: AbortSignal.timeout(timeoutMs) });
  await health.arrayBuffer();
  return true;
}

/** Waits until `child` serves volume calls on `socketPath`; throws with its log if it exits or hangs. */
export async function waitServing(children: Children, child: Child, socketPath: string, timeoutMs = 15_000): Promise<number> {
  const started = performance.now();
  for (;;) {
    if ((await answersActivate(socketPath, 1000)) && (await answersVolumeCalls(socketPath, timeoutMs))) return performance.now() - started;
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`serve exited (${child.exitCode ?? child.signalCode}) before serving: ${children.log(child).slice(-3000)}`);
    }
    if (performance.now() - started > timeoutMs) {
      throw new Error(`serve did not answer on ${socketPath} within ${timeoutMs} ms: ${children.log(child).slice(-3000)}`);
    }
    await Bun.sleep(3);
  }
}

/**
 * A posix-backend suite's per-test scratch space: a fresh temp dir with the serve layout
 * and a working directory in it before each test; after each test (and after all) every
 * child is stopped by PID and the dir removed. Registers its hooks when constructed, so
 * construct it at the top level of a test file.
 */
export class PosixSuite {
  readonly children = new Children();
  dir = "";
  layout: ServeLayout = { root: "", state: "", socket: "" };
  cwd = "";

  constructor(tempPrefix: string) {
    beforeEach(async () => {
      this.dir = await makeTempDir(tempPrefix);
      this.layout = { root: `${this.dir}/root`, state: `${this.dir}/state`, socket: `${this.dir}/p.sock` };
      this.cwd = `${this.dir}/cwd`;
      mkdirSync(this.cwd);
    });
    afterEach(async () => {
      await this.children.stopAll();
      await removeTempDir(this.dir);
    });
    afterAll(async () => {
      await this.children.stopAll();
    });
  }

  /** Starts `serve` on the layout (plus `extra` arguments) and waits until it answers. */
  async startServing(extra: string[] = []): Promise<{ child: Child; ms: number }> {
    const child = this.children.spawn(serveArgv(this.layout, extra), { cwd: this.cwd });
    const ms = await waitServing(this.children, child, this.layout.socket);
    return { child, ms };
  }
}

// ---------------------------------------------------------------------------------------
// HTTP on raw sockets

export interface HttpReply {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  /** The raw status line and header block, for messages. */
  head: string;
}

/**
 * Parses one HTTP/1.1 response from the front of `buf`. Returns undefined while it is
 * incomplete, `{ invalid }` when the bytes are not a response this suite accepts.
 * `closed`: the peer closed, so a body without Content-Length ends here.
 */
export function parseReply(
  buf: Buffer,
  options: { head?: boolean; closed?: boolean } = {},
): { reply: HttpReply; rest: Buffer } | { invalid: string } | undefined {
  const end = buf.indexOf("\r\n\r\n");
  if (end < 0) {
    const prefix = buf.subarray(0, Math.min(buf.length, 7)).toString("latin1");
    if (!"HTTP/1.".startsWith(prefix)) return { invalid: `not HTTP: ${JSON.stringify(buf.subarray(0, 80).toString("latin1"))}` };
    return options.closed && buf.length > 0 ? { invalid: `truncated head: ${JSON.stringify(buf.toString("latin1").slice(0, 200))}` } : undefined;
  }
  const head = buf.subarray(0, end).toString("latin1");
  const lines = head.split("\r\n");
  const match = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0] ?? "");
  if (!match) return { invalid: `bad status line ${JSON.stringify(lines[0])}` };
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon <= 0) return { invalid: `bad header line ${JSON.stringify(line)}` };
    headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  const status = Number(match[1]);
  const start = end + 4;
  if (options.head || status === 204 || status === 304) {
    return { reply: { status, headers, body: Buffer.alloc(0), head }, rest: buf.subarray(start) };
  }
  if (headers["transfer-encoding"] !== undefined) return { invalid: `unexpected Transfer-Encoding ${headers["transfer-encoding"]}` };
  const declared = headers["content-length"];
  if (declared === undefined) {
    // Only a closing connection may carry a body without length.
    if (!options.closed) return undefined;
    return { reply: { status, headers, body: buf.subarray(start), head }, rest: Buffer.alloc(0) };
  }
  if (!/^\d+$/.test(declared)) return { invalid: `bad Content-Length ${declared}` };
  const length = Number(declared);
  if (buf.length < start + length) {
    return options.closed ? { invalid: `body truncated at ${buf.length - start} of ${length} bytes` } : undefined;
  }
  return { reply: { status, headers, body: buf.subarray(start, start + length), head }, rest: buf.subarray(start + length) };
}

export type Outcome =
  | { kind: "reply"; status: number; json: unknown; text: string }
  /** The connection could not be opened: the request never left this process. */
  | { kind: "unsent"; error: string }
  /** The request was (perhaps partly) written, and no complete reply came back. */
  | { kind: "cut"; error: string };

export type Exchange =
  | { kind: "reply"; reply: HttpReply; ms: number }
  /** The server closed the connection without a (complete) reply; `received` is what came. */
  | { kind: "closed"; received: Buffer; ms: number }
  | { kind: "invalid"; why: string; ms: number }
  | { kind: "timeout"; ms: number }
  | { kind: "unsent"; error: string };

export interface RawConnOptions {
  /** How long one wait for more bytes lasts before the deadline is checked again. */
  pollMs?: number;
  /** Never wait past the deadline (a timeout is then seen when it is due, not up to `pollMs` later). */
  pollUntilDeadline?: boolean;
}

/** Raw bytes over one keep-alive connection, replies parsed strictly (see parseReply). */
export class RawConn {
  private socket: Socket | undefined;
  private buffer: Buffer = Buffer.alloc(0);
  private closed = true;
  private wake: (() => void) | undefined;
  private readonly pollMs: number;
  private readonly pollUntilDeadline: boolean;

  constructor(
    readonly socketPath: string,
    options: RawConnOptions = {},
  ) {
    this.pollMs = options.pollMs ?? 250;
    this.pollUntilDeadline = options.pollUntilDeadline ?? false;
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  async exchange(bytes: Uint8Array, options: { head?: boolean; timeoutMs?: number } = {}): Promise<Exchange> {
    if (this.closed) {
      try {
        await this.open();
      } catch (error) {
        return { kind: "unsent", error: String(error) };
      }
    }
    const started = performance.now();
    const deadline = started + (options.timeoutMs ?? 20_000);
    this.socket!.write(bytes);
    for (;;) {
      const parsed = parseReply(this.buffer, { head: options.head, closed: this.closed });
      const ms = performance.now() - started;
      if (parsed && "invalid" in parsed) {
        this.close();
        return { kind: "invalid", why: parsed.invalid, ms };
      }
      if (parsed) {
        this.buffer = parsed.rest;
        if (parsed.reply.headers.connection?.toLowerCase() === "close") this.close();
        return { kind: "reply", reply: parsed.reply, ms };
      }
      if (this.closed) {
        const received = this.buffer;
        this.buffer = Buffer.alloc(0);
        return { kind: "closed", received, ms };
      }
      const left = deadline - performance.now();
      if (left <= 0) {
        this.close();
        return { kind: "timeout", ms };
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.pollUntilDeadline ? Math.min(left, this.pollMs) : this.pollMs);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  close(): void {
    this.socket?.destroy();
    this.socket = undefined;
    this.closed = true;
    this.wake?.();
  }

  private open(): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = connect(this.socketPath);
      this.buffer = Buffer.alloc(0);
      socket.once("connect", () => {
        socket.off("error", reject);
        // EPIPE/ECONNRESET while we still write a large body: the reply (if any) has
        // been read already; the close event ends the exchange.
        socket.on("error", () => {});
        this.socket = socket;
        this.closed = false;
        resolve();
      });
      socket.once("error", reject);
      socket.on("data", (chunk: Buffer) => {
        if (this.socket !== socket) return;
        this.buffer = Buffer.concat([this.buffer, chunk]);
        this.wake?.();
      });
      socket.on("close", () => {
        if (this.socket !== socket) return;
        this.closed = true;
        this.wake?.();
      });
    });
  }
}

/** One request as dockerd's plugin client writes it (see EngineConn). */
export function engineRequest(method: string, payload: Uint8Array): Buffer {
  const head =
    `POST /${method} HTTP/1.1\r\nHost:\r\nUser-Agent: Go-http-client/1.1\r\n` +
    `Content-Length: ${payload.byteLength}\r\nAccept: application/vnd.docker.plugins.v1.2+json\r\n` +
    "Accept-Encoding: gzip\r\n\r\n";
  return Buffer.concat([Buffer.from(head), payload]);
}

/**
 * A client shaped like dockerd's plugin client (POST, empty Host, no Content-Type, the
 * v1.2 Accept header, JSON with a trailing newline, one keep-alive connection), which
 * reports what happened instead of throwing: the kill-injection model needs to know
 * whether a request may have reached the plugin.
 */
export class EngineConn {
  private readonly conn: RawConn;

  constructor(
    readonly socketPath: string,
    /** A request without a reply after this long is reported as cut (and is a finding). */
    readonly replyTimeoutMs = 20_000,
  ) {
    this.conn = new RawConn(socketPath, { pollMs: 1000, pollUntilDeadline: true });
  }

  call(method: string, body?: unknown): Promise<Outcome> {
    const payload = body === undefined ? "" : `${JSON.stringify(body)}\n`;
    return this.raw(method, Buffer.from(payload));
  }

  async raw(method: string, payload: Uint8Array): Promise<Outcome> {
    const out = await this.conn.exchange(engineRequest(method, payload), { timeoutMs: this.replyTimeoutMs });
    switch (out.kind) {
      case "unsent":
        return out;
      case "invalid":
        return { kind: "cut", error: `invalid reply: ${out.why}` };
      case "closed":
        return { kind: "cut", error: "connection closed before a complete reply" };
      case "timeout":
        return { kind: "cut", error: `no reply within ${this.replyTimeoutMs} ms (hung)` };
      case "reply": {
        const text = out.reply.body.toString("utf8");
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        return { kind: "reply", status: out.reply.status, json, text };
      }
    }
  }

  close(): void {
    this.conn.close();
  }
}

/** Runs `body` with a fresh EngineConn on `socketPath` and closes it afterwards, also when `body` throws. */
export async function withConn<T>(socketPath: string, body: (conn: EngineConn) => Promise<T>): Promise<T> {
  const conn = new EngineConn(socketPath);
  try {
    return await body(conn);
  } finally {
    conn.close();
  }
}

/** Sends each request in turn; each must be answered (see `must`), whatever the answer. */
export async function sendAll(conn: EngineConn, requests: readonly (readonly [string, unknown])[]): Promise<void> {
  for (const [method, body] of requests) await must(conn, method, body);
}

/** The `[CODE]` at the end of an `Err`, or undefined. */
export function errCode(json: unknown): string | undefined {
  if (typeof json !== "object" || json === null || !("Err" in json)) return undefined;
  const err = (json as { Err: unknown }).Err;
  if (typeof err !== "string") return undefined;
  return /\[([A-Z_]+)\]$/.exec(err)?.[1] ?? "NO_CODE";
}

export function isOk(out: Outcome): out is Extract<Outcome, { kind: "reply" }> {
  return out.kind === "reply" && out.status === 200 && errCode(out.json) === undefined;
}

/** Sends one request that must be answered (no kills around); throws otherwise. */
export async function must(conn: EngineConn, method: string, body?: unknown): Promise<{ status: number; json: any; text: string }> {
  const out = await conn.call(method, body);
  if (out.kind !== "reply") throw new Error(`${method} ${JSON.stringify(body)?.slice(0, 200)}: ${out.kind}: ${out.error}`);
  return out;
}

// ---------------------------------------------------------------------------------------
// The volume root, as the README defines it

const encoder = new TextEncoder();

/** The README's rule for names: one entry, no "/", no control characters, no leading ".", <= 255 bytes. */
export function isValidVolumeName(name: string): boolean {
  return (
    name.length > 0 &&
    encoder.encode(name).length <= 255 &&
    !name.includes("/") &&
    !/[\u0000-\u001f\u007f]/.test(name) &&
    !name.startsWith(".")
  );
}

export interface RootInventory {
  /** Top-level entries other than the control dir, with their lstat kind. */
  entries: Map<string, "dir" | "symlink" | "file" | "other">;
  /** Metadata files by name (non-dotted entries of the metadata dir) and their parsed content. */
  metadata: Map<string, { state?: string; raw: string; kind: "file" | "symlink" | "other" }>;
  /** Dotted leftovers (temporary files) in the metadata dir. */
  metadataTemp: string[];
  /** Entries of the control dir itself. */
  control: string[];
  trash: string[];
}

function kindOf(path: string): "dir" | "symlink" | "file" | "other" {
  const info = lstatSync(path);
  if (info.isSymbolicLink()) return "symlink";
  if (info.isDirectory()) return "dir";
  if (info.isFile()) return "file";
  return "other";
}

export function inventory(root: string): RootInventory {
  const entries = new Map<string, "dir" | "symlink" | "file" | "other">();
  for (const name of readdirSync(root)) {
    if (name === CONTROL_DIR) continue;
    entries.set(name, kindOf(join(root, name)));
  }
  const metaDir = join(root, CONTROL_DIR, "volumes");
  const metadata = new Map<string, { state?: string; raw: string; kind: "file" | "symlink" | "other" }>();
  const metadataTemp: string[] = [];
  for (const name of readdirSync(metaDir)) {
    if (name.startsWith(".")) {
      metadataTemp.push(name);
      continue;
    }
    const kind = kindOf(join(metaDir, name));
    if (kind !== "file") {
      metadata.set(name, { raw: "", kind: kind === "symlink" ? "symlink" : "other" });
      continue;
    }
    const raw = readFileSync(join(metaDir, name), "utf8");
    let state: string | undefined;
    try {
      state = (JSON.parse(raw) as { state?: string }).state;
    } catch {
      state = "<invalid json>";
    }
    metadata.set(name, { state, raw, kind });
  }
  return {
    entries,
    metadata,
    metadataTemp,
    control: readdirSync(join(root, CONTROL_DIR)).sort(),
    trash: readdirSync(join(root, CONTROL_DIR, "trash")),
  };
}

/** Resident set size of a process in kB (VmRSS), or undefined when it is gone. */
export function vmRssKb(pid: number): number | undefined {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

export function sleep(ms: number): Promise<void> {
  return Bun.sleep(ms);
}

/** Installs Debian's strace when missing (as root, non-interactive); returns its path. */
export async function ensureStrace(): Promise<string> {
  const path = "/usr/bin/strace";
  if (await Bun.file(path).exists()) return path;
  if (process.getuid?.() !== 0) throw new Error("strace is missing and only root can install it");
  const env = { ...process.env, NEEDRESTART_SUSPEND: "1", DEBIAN_FRONTEND: "noninteractive" };
  const run = async (argv: string[]) => {
    const proc = Bun.spawn(argv, { env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    return { code, text: out + err };
  };
  let result = await run(["apt-get", "install", "-y", "-q", "strace"]);
  if (result.code !== 0) {
    await run(["apt-get", "update", "-q"]);
    result = await run(["apt-get", "install", "-y", "-q", "strace"]);
  }
  if (result.code !== 0 || !(await Bun.file(path).exists())) throw new Error(`installing strace failed: ${result.text.slice(-2000)}`);
  return path;
}
