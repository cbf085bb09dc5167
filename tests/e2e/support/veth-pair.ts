// Two network namespaces joined by a veth pair: the private network of a two-host test.
// Names carry a random suffix so parallel runs never share or delete each other's.

import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { runArgv } from "./engine.ts";

const IP = "/usr/sbin/ip";
const PREFIX_LENGTH = 24;

export interface VethHost {
  /** /run/netns/NAME, for `nsenter --net=` (see NamespaceOptions.netns). */
  readonly netns: string;
  /** This side's address on the pair. */
  readonly address: string;
}

export interface VethPair {
  readonly a: VethHost;
  readonly b: VethHost;
  /** Deletes both namespaces (and with them the pair). Idempotent. */
  destroy(): Promise<void>;
}

async function ip(args: string[]): Promise<void> {
  const result = await runArgv([IP, ...args]);
  if (result.code !== 0) throw new Error(`ip ${args.join(" ")} exited ${result.code}: ${result.stderr.trim()}`);
}

/** Creates the namespaces, the pair, addresses 10.231.0.1 and .2, and brings lo and the pair up. */
export async function createVethPair(): Promise<VethPair> {
  const tag = randomBytes(3).toString("hex");
  const names = { a: `dqp-${tag}-a`, b: `dqp-${tag}-b` };
  const created: string[] = [];
  const destroy = async (): Promise<void> => {
    for (const name of created.splice(0)) {
      if (existsSync(`/run/netns/${name}`)) await ip(["netns", "delete", name]);
    }
  };
  try {
    for (const name of [names.a, names.b]) {
      await ip(["netns", "add", name]);
      created.push(name);
    }
    // Interface names are at most 15 bytes.
    await ip(["link", "add", `v${tag}a`, "netns", names.a, "type", "veth", "peer", "name", `v${tag}b`, "netns", names.b]);
    const hosts = { a: { netns: `/run/netns/${names.a}`, address: "10.231.0.1" }, b: { netns: `/run/netns/${names.b}`, address: "10.231.0.2" } };
    for (const side of ["a", "b"] as const) {
      const name = names[side];
      await ip(["-n", name, "addr", "add", `${hosts[side].address}/${PREFIX_LENGTH}`, "dev", `v${tag}${side}`]);
      await ip(["-n", name, "link", "set", `v${tag}${side}`, "up"]);
      await ip(["-n", name, "link", "set", "lo", "up"]);
    }
    return { ...hosts, destroy };
  } catch (error) {
    await destroy();
    throw error;
  }
}
