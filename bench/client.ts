// A raw HTTP/1.1 client over a Unix socket that speaks exactly like dockerd's plugin
// client (Go net/http): `POST /<Method>`, an EMPTY Host header, `User-Agent:
// Go-http-client/1.1`, the v1.2 Accept header, `Accept-Encoding: gzip`, no Content-Type,
// a JSON body ending in "\n", one keep-alive connection reused for every call.
//
// One request in flight per connection (no pipelining), replies framed by Content-Length.
// Kept self-contained (no imports from src/ or tests/) and cheap per request, because it
// shares the machine's two cores with the server it measures.

import type { Socket } from "bun";

export interface Reply {
  status: number;
  body: Buffer;
}

const HEADER_END = Buffer.from("\r\n\r\n");

/** The bytes dockerd sends for `method` with `body` (undefined: empty body). */
export function engineRequest(method: string, body?: unknown): Buffer {
  const payload = body === undefined ? "" : `${JSON.stringify(body)}\n`;
  const length = Buffer.byteLength(payload);
  return Buffer.from(
    `POST /${method} HTTP/1.1\r\nHost: \r\nUser-Agent: Go-http-client/1.1\r\n` +
      `Content-Length: ${length}\r\nAccept: application/vnd.docker.plugins.v1.2+json\r\n` +
      `Accept-Encoding: gzip\r\n\r\n${payload}`,
  );
}

/** True when a 200 reply carries no `Err` (the protocol reports failures in the body). */
export function isSuccess(reply: Reply): boolean {
  if (reply.status !== 200) return false;
  // Replies are `{"Err":...}` on failure; successful ones never start that way.
  return !(reply.body.length >= 7 && reply.body.toString("latin1", 0, 7) === '{"Err":');
}

export class Connection {
  private socket: Socket<undefined> | undefined;
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Bytes of the reply being received, once its header was parsed; 0 before. */
  private expected = 0;
  private pending: { resolve: (reply: Reply) => void; reject: (error: Error) => void } | undefined;
  private unsent: Uint8Array | undefined;
  private closed = false;

  private constructor(readonly path: string) {}

  static async open(path: string): Promise<Connection> {
    const connection = new Connection(path);
    connection.socket = await Bun.connect<undefined>({
      unix: path,
      socket: {
        data: (_socket, data) => connection.onData(data),
        drain: () => connection.flush(),
        close: () => connection.onClose(new Error("connection closed by the server")),
        error: (_socket, error) => connection.onClose(error),
      },
    });
    return connection;
  }

  /** Sends one request and resolves with its reply. */
  send(request: Uint8Array): Promise<Reply> {
    if (this.closed || !this.socket) return Promise.reject(new Error("connection is closed"));
    if (this.pending) return Promise.reject(new Error("one request at a time per connection"));
    return new Promise<Reply>((resolve, reject) => {
      this.pending = { resolve, reject };
      this.unsent = request;
      this.flush();
    });
  }

  close(): void {
    this.closed = true;
    this.socket?.end();
    this.socket = undefined;
  }

  private flush(): void {
    const data = this.unsent;
    if (!data || !this.socket) return;
    const written = this.socket.write(data);
    this.unsent = written >= data.byteLength ? undefined : data.subarray(Math.max(written, 0));
  }

  private onClose(error: Error): void {
    this.closed = true;
    const pending = this.pending;
    this.pending = undefined;
    pending?.reject(error);
  }

  private onData(data: Buffer): void {
    this.chunks.push(data);
    this.buffered += data.length;
    // A large reply (List of 50,000 volumes) arrives in many chunks: join them once.
    if (this.expected > 0 && this.buffered < this.expected) return;
    this.tryParse();
  }

  private tryParse(): void {
    if (!this.pending) return;
    let buffer = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks, this.buffered);
    this.chunks = [buffer];
    const end = buffer.indexOf(HEADER_END);
    if (end < 0) return;
    const head = buffer.toString("latin1", 0, end);
    const status = Number(head.slice(9, 12));
    const lower = head.toLowerCase();
    const at = lower.indexOf("\r\ncontent-length:");
    if (at < 0) {
      this.fail(new Error(`reply without Content-Length: ${head}`));
      return;
    }
    const lineEnd = lower.indexOf("\r\n", at + 2);
    const length = Number(lower.slice(at + 17, lineEnd < 0 ? undefined : lineEnd).trim());
    const total = end + 4 + length;
    if (buffer.length < total) {
      this.expected = total;
      return;
    }
    this.expected = 0;
    const body = buffer.subarray(end + 4, total);
    if (buffer.length > total) {
      // Bytes beyond the reply would be a protocol error; keep them so it shows.
      buffer = buffer.subarray(total);
      this.chunks = [buffer];
      this.buffered = buffer.length;
    } else {
      this.chunks = [];
      this.buffered = 0;
    }
    const pending = this.pending;
    this.pending = undefined;
    pending.resolve({ status, body });
  }

  private fail(error: Error): void {
    const pending = this.pending;
    this.pending = undefined;
    this.close();
    pending?.reject(error);
  }
}

/** One call on a fresh connection (for setup and readiness checks). */
export async function callOnce(path: string, method: string, body?: unknown): Promise<Reply> {
  const connection = await Connection.open(path);
  try {
    return await connection.send(engineRequest(method, body));
  } finally {
    connection.close();
  }
}
