// Self-test of the multi-host harness pieces the swarm e2e stands on: a namespace with its
// own hostname inside one side of a veth pair, a process that keeps the host's network, and
// a teardown that leaves no network namespace behind.

import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, readlinkSync } from "node:fs";
import { rm } from "node:fs/promises";
import { createWorkDir, type Namespace, startNamespace } from "./engine.ts";
import { createVethPair, type VethPair } from "./veth-pair.ts";

let pair: VethPair | undefined;
let ns: Namespace | undefined;
let workDir = "";

beforeAll(async () => {
  workDir = await createWorkDir();
  pair = await createVethPair();
  ns = await startNamespace(workDir, { hostname: "dqp-selftest", netns: pair.a.netns });
});

afterAll(async () => {
  await ns?.stop();
  await pair?.destroy();
  await rm(workDir, { recursive: true, force: true });
});

async function output(argv: string[], hostNetwork = false): Promise<string> {
  if (!ns) throw new Error("namespace not started");
  const proc = ns.spawn(argv, { stdout: "pipe", stderr: "pipe", hostNetwork });
  const [text, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited]);
  expect(code).toBe(0);
  return text.trim();
}

test("a namespace has its own hostname and the network of its side of the pair", async () => {
  expect(await output(["hostname"])).toBe("dqp-selftest");
  const addresses = await output(["/usr/sbin/ip", "-o", "-4", "addr", "show"]);
  expect(addresses).toContain(`${pair?.a.address}/24`);
  expect(addresses).not.toContain(`${pair?.b.address}/24`);
  // The other side answers across the pair.
  const ping = await output(["/bin/busybox", "ping", "-c", "1", "-W", "5", pair?.b.address ?? ""]);
  expect(ping).toContain("1 packets received");
});

test("hostNetwork keeps the host's network namespace but the node's hostname", async () => {
  expect(await output(["readlink", "/proc/self/ns/net"], true)).toBe(readlinkSync("/proc/self/ns/net"));
  expect(await output(["readlink", "/proc/self/ns/net"])).not.toBe(readlinkSync("/proc/self/ns/net"));
  expect(await output(["hostname"], true)).toBe("dqp-selftest");
});

test("destroy removes both network namespaces", async () => {
  const paths = [pair?.a.netns ?? "", pair?.b.netns ?? ""];
  for (const path of paths) expect(existsSync(path)).toBe(true);
  await ns?.stop();
  ns = undefined;
  await pair?.destroy();
  for (const path of paths) expect(existsSync(path)).toBe(false);
});
