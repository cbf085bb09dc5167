import { connect, type Socket } from "node:net";

/** How the engine's Host header looks: empty on Docker 20.10, a fixed name on newer ones. */
export type HostStyle = "empty" | "moby";

export interface EngineReply {
  status: number;
  headers: Record<string, string>;
  text: string;
  json: unknown;
}

/**
 * A client that speaks exactly like dockerd's plugin client: POST, `Host:` empty (20.10)
 * or `plugin.moby.localhost`, no Content-Type, the v1.2 Accept header, JSON bodies with a
 * trailing newline, one keep-alive connection reused for every call.
 */
export class EngineClient {
  private socket: Socket | undefined;
  private buffer = Buffer.alloc(0);
  private waiting: (() => void) | undefined;
  private closed = false;

  constructor(
    readonly socketPath: string,
    readonly hostStyle: HostStyle = "empty",
  ) {}

  /** Sends one request; `body` undefined sends an empty body (Content-Length: 0). */
  async call(method: string, body?: unknown): Promise<EngineReply> {
    const payload = body === undefined ? "" : `${JSON.stringify(body)}\n`;
    return this.raw(method, Buffer.from(payload));
  }

  /** Sends raw body bytes (for invalid JSON, invalid UTF-8, ...). */
  async raw(method: string, payload: Uint8Array): Promise<EngineReply> {
    const socket = await this.connection();
    const host = this.hostStyle === "empty" ? "" : " plugin.moby.localhost";
    const head =
      `POST /${method} HTTP/1.1\r\nHost:${host}\r\nUser-Agent: Go-http-client/1.1\r\n` +
      `Content-Length: ${payload.byteLength}\r\nAccept: application/vnd.docker.plugins.v1.2+json\r\n` +
      "Accept-Encoding: gzip\r\n\r\n";
    socket.write(Buffer.concat([Buffer.from(head), payload]));
    return this.readReply();
  }

  close(): void {
    this.socket?.destroy();
    this.socket = undefined;
  }

  private connection(): Promise<Socket> {
    if (this.socket && !this.closed) return Promise.resolve(this.socket);
    return new Promise((resolve, reject) => {
      const socket = connect(this.socketPath);
      this.buffer = Buffer.alloc(0);
      this.closed = false;
      socket.once("connect", () => {
        socket.off("error", reject);
        this.socket = socket;
        resolve(socket);
      });
      socket.once("error", reject);
      socket.on("data", (chunk: Buffer) => {
        this.buffer = Buffer.concat([this.buffer, chunk]);
        this.waiting?.();
      });
      socket.on("close", () => {
        this.closed = true;
        this.waiting?.();
      });
    });
  }

  private async readReply(): Promise<EngineReply> {
    for (;;) {
      const reply = this.tryParse();
      if (reply) return reply;
      if (this.closed) throw new Error("connection closed before a complete reply");
      await new Promise<void>((resolve) => {
        this.waiting = resolve;
      });
      this.waiting = undefined;
    }
  }

  private tryParse(): EngineReply | undefined {
    const end = this.buffer.indexOf("\r\n\r\n");
    if (end < 0) return undefined;
    const lines = this.buffer.subarray(0, end).toString("latin1").split("\r\n");
    const status = Number(lines[0]?.split(" ")[1]);
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(":");
      headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
    }
    const length = Number(headers["content-length"] ?? "0");
    if (this.buffer.length < end + 4 + length) return undefined;
    const text = this.buffer.subarray(end + 4, end + 4 + length).toString("utf8");
    this.buffer = this.buffer.subarray(end + 4 + length);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status, headers, text, json };
  }
}
