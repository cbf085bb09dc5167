// `serve --listen` off loopback: no certificate set, no start; with one, only clients with
// a certificate from the plugin's CA get past the handshake. The compiled binary, on
// loopback (a TLS listener with --tls-ca is served the same on any address).

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { makeCertificates } from "../support/certs.ts";
import { makeTempDir, removeTempDir } from "../support/tmp.ts";
import { BINARY, runBinary } from "./plugin-process.ts";

let dir: string;
let plugin: Subprocess<"ignore", "ignore", "pipe"> | undefined;
let origin = "";
const file = (name: string) => join(dir, name);
const pem = (name: string) => readFileSync(file(name), "utf8");

beforeAll(async () => {
  dir = await makeTempDir("dqp-tls-");
  await makeCertificates(dir, "ca");
  // A second, unrelated CA and a client certificate it signed.
  await makeCertificates(dir, "other-ca", "other-");
  plugin = Bun.spawn(
    [BINARY, "serve", "--backend", "posix", "--path", file("volumes"), "--state-dir", file("state"), "--listen", "tcp://127.0.0.1:0",
      "--tls-cert", file("server.pem"), "--tls-key", file("server.key"), "--tls-ca", file("ca.pem")],
    { stdin: "ignore", stdout: "ignore", stderr: "pipe" },
  );
  // The first log line names the port the kernel chose.
  const reader = plugin.stderr.getReader();
  let log = "";
  while (!/on (https:\/\/127\.0\.0\.1:\d+)/.test(log)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`serve exited: ${log}`);
    log += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  origin = /on (https:\/\/127\.0\.0\.1:\d+)/.exec(log)?.[1] ?? "";
}, 60_000);

afterAll(async () => {
  if (plugin) {
    plugin.kill("SIGTERM");
    await plugin.exited;
  }
  await removeTempDir(dir);
});

function create(name: string, tls: { ca: string; cert?: string; key?: string }): Promise<Response> {
  return fetch(`${origin}/VolumeDriver.Create`, { method: "POST", body: JSON.stringify({ Name: name }), tls });
}

describe("TLS on --listen", () => {
  test("off loopback, a certificate without --tls-ca is refused before anything is created", async () => {
    const result = await runBinary([
      "serve", "--backend", "posix", "--path", file("open-volumes"), "--state-dir", file("open-state"),
      "--listen", "tcp://0.0.0.0:18443", "--tls-cert", file("server.pem"), "--tls-key", file("server.key"),
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      "error: --listen tcp://0.0.0.0:18443 is reachable from the network and the plugin protocol has no login: it needs --tls-cert, --tls-key and --tls-ca (missing --tls-ca); give the engine its client certificate with `docker-quobyte-plugin write-spec --address https://0.0.0.0:18443 --tls-ca CA.pem --tls-cert CLIENT.pem --tls-key CLIENT-KEY.pem`, or listen on 127.0.0.1 (see docker-quobyte-plugin serve --help)\n",
    );
    expect(existsSync(file("open-volumes"))).toBe(false);
    expect(existsSync(file("open-state"))).toBe(false);
  });

  test("a client without a certificate fails the handshake; nothing is created", async () => {
    // The server ends the handshake (EPROTO) when no certificate comes.
    await expect(create("evil", { ca: pem("ca.pem") })).rejects.toMatchObject({ code: "EPROTO" });
    expect(existsSync(file("volumes/evil"))).toBe(false);
  });

  test("a client certificate from another CA fails the handshake; nothing is created", async () => {
    // The server verifies the certificate against its CA and drops the connection.
    await expect(create("evil2", { ca: pem("ca.pem"), cert: pem("other-client.pem"), key: pem("other-client.key") })).rejects.toMatchObject({
      code: expect.stringMatching(/^(ECONNRESET|EPROTO)$/),
    });
    expect(readdirSync(file("volumes")).filter((name) => name.startsWith("evil"))).toEqual([]);
  });

  test("the CA's client gets in; status --url reaches the plugin with the client certificate", async () => {
    const res = await create("allowed", { ca: pem("ca.pem"), cert: pem("client.pem"), key: pem("client.key") });
    expect(await res.json()).toEqual({});
    const status = await runBinary(["status", "--url", origin, "--tls-ca", file("ca.pem"), "--tls-cert", file("client.pem"), "--tls-key", file("client.key")]);
    expect(status.stderr).toBe("");
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/^ok: backend posix/);
    expect(status.stdout).toMatch(/allowed +0/);
    const refused = await runBinary(["status", "--url", origin, "--tls-ca", file("ca.pem")]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/^error: the TLS handshake with https:\/\/127\.0\.0\.1:\d+ failed \(EPROTO\): /);
  });
});
