import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { renderSpec, SpecError, writeSpec } from "../../../src/protocol/spec.ts";
import { makeTempDir, removeTempDir } from "../../support/tmp.ts";

let dir: string;
beforeEach(async () => {
  dir = await makeTempDir("dqp-spec-");
});
afterEach(async () => {
  await removeTempDir(dir);
});

describe("renderSpec", () => {
  test("unix and loopback tcp addresses give a .spec", () => {
    expect(renderSpec({ name: "q", dir, address: "unix:///run/q.sock" })).toEqual({
      path: `${dir}/q.spec`,
      contents: "unix:///run/q.sock\n",
      conflicting: `${dir}/q.json`,
    });
    expect(renderSpec({ name: "q", dir, address: "tcp://127.0.0.1:8080", insecure: true }).contents).toBe("tcp://127.0.0.1:8080\n");
  });

  test("TLS files give a .json with a verified TLSConfig", () => {
    const spec = renderSpec({ name: "q", dir, address: "https://plugin.example:8443", tlsCa: "/ca.pem", tlsCert: "/c.pem", tlsKey: "/k.pem" });
    expect(spec.path).toBe(`${dir}/q.json`);
    expect(JSON.parse(spec.contents)).toEqual({
      Name: "q",
      Addr: "https://plugin.example:8443",
      TLSConfig: { InsecureSkipVerify: false, CAFile: "/ca.pem", CertFile: "/c.pem", KeyFile: "/k.pem" },
    });
  });

  test("refuses what the engine would silently run insecurely or not at all", () => {
    const refused: [Parameters<typeof renderSpec>[0], RegExp][] = [
      [{ name: "q", dir, address: "tcp://127.0.0.1:8080" }, /--insecure/],
      [{ name: "q", dir, address: "https://h:8443" }, /--tls-ca/],
      [{ name: "q", dir, address: "https://h:8443", tlsCert: "/c", tlsKey: "/k" }, /without --tls-ca/],
      [{ name: "q", dir, address: "tcp://h:1", tlsCa: "/ca" }, /https:\/\//],
      [{ name: "q", dir, address: "https://h:8443", tlsCa: "/ca", tlsCert: "/c" }, /go together/],
      [{ name: "q", dir, address: "https://h:8443", tlsCa: "ca.pem" }, /absolute/],
      [{ name: "q", dir, address: "https://h:8443/api", tlsCa: "/ca" }, /path/],
      [{ name: "q", dir, address: "tcp://h", insecure: true }, /port/],
      [{ name: "q", dir, address: "ftp://h:1" }, /scheme/],
      [{ name: "q", dir, address: "not a url" }, /not a URL/],
      [{ name: "../q", dir, address: "unix:///x.sock" }, /--name/],
    ];
    for (const [request, message] of refused) {
      expect(() => renderSpec(request)).toThrow(message);
      expect(() => renderSpec(request)).toThrow(SpecError);
    }
  });
});

describe("writeSpec", () => {
  test("writes exactly one file, 0644, replacing the other form", async () => {
    writeFileSync(`${dir}/q.spec`, "tcp://old:1\n");
    await writeSpec(renderSpec({ name: "q", dir, address: "https://h:8443", tlsCa: "/ca.pem" }));
    expect(readdirSync(dir)).toEqual(["q.json"]);
    expect(statSync(`${dir}/q.json`).mode & 0o777).toBe(0o644);
    await writeSpec(renderSpec({ name: "q", dir, address: "unix:///run/q.sock" }));
    expect(readdirSync(dir)).toEqual(["q.spec"]);
    expect(existsSync(`${dir}/q.json`)).toBe(false);
  });
});
