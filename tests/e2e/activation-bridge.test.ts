// The plugin under systemd-socket-activate, reached through the inherited socket and the
// bridge to its private one: an empty POST to Capabilities and List (a probe with curl)
// is answered as {}, and a large List reply read slowly while the plugin drains on
// SIGTERM arrives whole, not cut where the server side closed.

import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { EngineClient } from "../support/engine-client.ts";
import { makeTempDir, removeTempDir } from "../support/tmp.ts";
import { BINARY } from "./plugin-process.ts";

const VOLUMES = 4000;
/** Long names make a List reply of about 2 MB, far beyond the sockets' buffers. */
const volumeName = (i: number): string => `v${String(i).padStart(5, "0")}-${"x".repeat(230)}`;

let dir = "";
let socket = "";
let activator: ReturnType<typeof Bun.spawn> | undefined;

beforeEach(async () => {
  dir = await makeTempDir("dqp-bridge-");
  socket = `${dir}/public.sock`;
  activator = Bun.spawn(
    ["systemd-socket-activate", "-l", socket, BINARY, "serve", "--backend", "posix", "--path", `${dir}/volumes`, "--state-dir", `${dir}/state`, "--timeout", "10"],
    { stdin: "ignore", stdout: "ignore", stderr: "pipe" },
  );
  const deadline = Date.now() + 10_000;
  while (!existsSync(socket) && Date.now() < deadline) await Bun.sleep(20);
});

afterEach(async () => {
  if (activator && activator.exitCode === null) {
    activator.kill("SIGKILL");
    await activator.exited;
  }
  await removeTempDir(dir);
});

/**
 * A client that sends one List and then reads nothing for `waitSeconds` (perl: a Bun or
 * node socket keeps reading from the kernel while paused), then everything until the close.
 */
const SLOW_CLIENT = `
use IO::Socket::UNIX;
my ($path, $wait) = @ARGV;
my $s = IO::Socket::UNIX->new(Peer => $path) or die "connect: $!";
print $s "POST /VolumeDriver.List HTTP/1.1\\r\\nHost: plugin\\r\\nContent-Length: 3\\r\\n\\r\\n{}\\n";
select(undef, undef, undef, $wait);
binmode STDOUT;
my $buf;
while (sysread($s, $buf, 65536)) { print STDOUT $buf; }
`;

describe("socket activation bridge", () => {
  test("an empty POST to Capabilities and List is answered as {} over the inherited socket", async () => {
    const engine = new EngineClient(socket);
    try {
      const capabilities = await engine.call("VolumeDriver.Capabilities");
      expect({ status: capabilities.status, json: capabilities.json }).toEqual({ status: 200, json: { Capabilities: { Scope: "local" } } });
      const list = await engine.call("VolumeDriver.List");
      expect({ status: list.status, json: list.json }).toEqual({ status: 200, json: { Volumes: [] } });
    } finally {
      engine.close();
    }
  });

  test("a large List read slowly during a SIGTERM drain arrives whole", async () => {
    const engines = Array.from({ length: 8 }, () => new EngineClient(socket));
    try {
      await Promise.all(
        engines.map(async (engine, lane) => {
          for (let i = lane; i < VOLUMES; i += engines.length) {
            expect((await engine.call("VolumeDriver.Create", { Name: volumeName(i) })).json).toEqual({});
          }
        }),
      );
    } finally {
      for (const engine of engines) engine.close();
    }
    const proc = activator;
    if (!proc) throw new Error("no activator");
    // The reply is written while the client reads nothing; the server side then closes on
    // SIGTERM while much of the reply still waits in the bridge.
    const client = Bun.spawn(["perl", "-e", SLOW_CLIENT, socket, "2"], { stdin: "ignore", stdout: "pipe", stderr: "inherit" });
    await Bun.sleep(500);
    proc.kill("SIGTERM");
    const raw = Buffer.from(await new Response(client.stdout).arrayBuffer());
    expect(await client.exited).toBe(0);
    const split = raw.indexOf("\r\n\r\n");
    const head = raw.subarray(0, split).toString("latin1");
    const body = raw.subarray(split + 4);
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1]);
    console.log(`[bridge] List reply of ${length} bytes, ${body.length} received by a client that read nothing for 2 s`);
    expect(head).toStartWith("HTTP/1.1 200");
    expect(body.length).toBe(length);
    const volumes = (JSON.parse(body.toString("utf8")) as { Volumes: { Name: string }[] }).Volumes;
    expect(volumes.length).toBe(VOLUMES);
    expect(await proc.exited).toBe(0);
  }, 120_000);
});
