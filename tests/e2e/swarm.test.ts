// A two-node Docker Swarm on shared storage: two dockerd 20.10 in two network namespaces
// joined by a veth pair, each node in its own mount and UTS namespace with its own plugin
// instance, found by its own engine through its own /run/docker/plugins. Nobody runs
// `docker volume ls` before the service: the plugins tell their engines about themselves
// (src/system/engine-nudge.ts), or the scheduler would leave the task Pending.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { type SwarmNode as Node, eventually, SwarmNode } from "./support/swarm-node.ts";
import { createVethPair, type VethPair } from "./support/veth-pair.ts";

const DRIVER = "quobyte";
/** Started with the nudge turned off: the control that shows the engine would not know it. */
const SILENT_DRIVER = "quiet";
const SERVICE = "dbsvc";
const VOLUME = "db";
// The first task writes the note; any later one copies it to read-back. Exits at once on SIGTERM.
const TASK_SCRIPT = 'if [ -f /data/note ]; then cat /data/note > /data/read-back; else echo written-by-the-first-task > /data/note; fi; trap "exit 0" TERM; sleep 3600 & wait';

interface SharedStorage {
  /** Where `node` sees the shared volume root. */
  pathFor(node: Node): string;
  destroy(): Promise<void>;
}

/** A directory both nodes see at the same path (the stand-in until a shared file system is wired in). */
async function sharedDirectory(): Promise<SharedStorage> {
  const root = await mkdtemp("/tmp/dqp-swarm-shared-");
  return { pathFor: () => root, destroy: () => rm(root, { recursive: true, force: true }) };
}

let pair: VethPair | undefined;
let storage: SharedStorage | undefined;
let manager: Node;
let worker: Node;
const timings: Record<string, number> = {};
const suiteStarted = performance.now();

function posixArgs(node: Node): string[] {
  if (!storage) throw new Error("no shared storage");
  return ["--backend", "posix", "--scope", "global", "--path", storage.pathFor(node)];
}

async function timed<T>(label: string, step: () => Promise<T>): Promise<T> {
  const started = performance.now();
  try {
    return await step();
  } finally {
    timings[label] = Math.round(performance.now() - started) / 1000;
  }
}

/** Volume plugins the swarm knows `node` to have, as its manager sees them. */
async function swarmVolumePlugins(node: Node): Promise<string[]> {
  const plugins = JSON.parse(await manager.docker("node", "inspect", node.hostname, "--format", "{{json .Description.Engine.Plugins}}")) as { Type: string; Name: string }[];
  return plugins.filter((plugin) => plugin.Type === "Volume").map((plugin) => plugin.Name);
}

/** Volume drivers `node`'s engine has looked up so far (what it reports to the swarm). */
async function engineVolumeDrivers(node: Node): Promise<string[]> {
  return JSON.parse(await node.docker("info", "--format", "{{json .Plugins.Volume}}")) as string[];
}

/** The node running the service's task, once it reports Running. */
async function runningTaskNode(): Promise<string | undefined> {
  const tasks = await manager.docker("service", "ps", SERVICE, "--filter", "desired-state=running", "--format", "{{.Node}}|{{.CurrentState}}");
  const running = tasks.split("\n").filter((line) => line.split("|")[1]?.startsWith("Running"));
  return running.length === 1 ? running[0]?.split("|")[0] : undefined;
}

async function describeService(): Promise<string> {
  const ps = await manager.dockerResult(["service", "ps", "--no-trunc", SERVICE]);
  return `${ps.stdout}${ps.stderr}\n${manager.pluginLogs()}\n${worker.pluginLogs()}`;
}

/** `docker volume ls` on `node` as "name driver scope" lines for VOLUME. */
async function listedVolume(node: Node): Promise<string[]> {
  const lines = await node.docker("volume", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}");
  return lines.split("\n").filter((line) => line.startsWith(`${VOLUME} `));
}

/** IDs of the service's containers on `node`, running or not. */
async function serviceContainers(node: Node): Promise<string> {
  return node.docker("ps", "-aq", "--filter", `label=com.docker.swarm.service.name=${SERVICE}`);
}

function nudgesLogged(node: Node): number {
  return node.plugins.get(DRIVER)?.stderr().split("\n").filter((line) => line.includes("now knows driver")).length ?? 0;
}

beforeAll(async () => {
  await timed("setup", async () => {
    pair = await createVethPair();
    storage = await sharedDirectory();
    manager = await SwarmNode.create("dqp-swarm-a", pair.a);
    worker = await SwarmNode.create("dqp-swarm-b", pair.b);
    // The manager's plugin starts before its engine (as when the plugin's unit comes up
    // first), the worker's after: the nudge has to cover both orders.
    await manager.startPlugin(DRIVER, posixArgs(manager));
    await manager.startEngine();
    await worker.startEngine();
    await worker.startPlugin(DRIVER, posixArgs(worker));
    // The engine looks up every plugin it finds when it lists volumes, so the control
    // starts only after the worker's nudge has happened.
    await eventually("the worker's nudge", async () => (nudgesLogged(worker) === 1 ? true : undefined), 30_000, async () => worker.pluginLogs());
    await mkdir(`${worker.workDir}/quiet-volumes`);
    await worker.startPlugin(SILENT_DRIVER, ["--backend", "posix", "--path", `${worker.workDir}/quiet-volumes`], { nudge: false });

    // No task history: a node's engine refuses `volume rm` itself while a stopped task's
    // container still references the volume, and the request would never reach the plugin.
    await manager.docker("swarm", "init", "--task-history-limit", "0", "--advertise-addr", manager.address, "--listen-addr", `${manager.address}:2377`);
    const token = await manager.docker("swarm", "join-token", "-q", "worker");
    await worker.docker("swarm", "join", "--token", token, "--advertise-addr", worker.address, "--listen-addr", `${worker.address}:2377`, `${manager.address}:2377`);
  });
}, 240_000);

afterAll(async () => {
  await manager?.dockerResult(["service", "rm", SERVICE]).catch(() => {});
  for (const node of [worker, manager]) await node?.destroy();
  await pair?.destroy();
  await storage?.destroy();
  timings.total = Math.round(performance.now() - suiteStarted) / 1000;
  console.log(`[swarm e2e] seconds: ${JSON.stringify(timings)}`);
}, 180_000);

describe("Docker Swarm, two nodes, posix --scope global on shared storage", () => {
  test("both engines report the plugin to the swarm without anyone listing volumes", async () => {
    await timed("plugin reported to the swarm", async () => {
      for (const node of [manager, worker]) {
        await eventually(`${node.hostname} to report volume plugin ${DRIVER} to the swarm`, async () =>
          (await swarmVolumePlugins(node)).includes(DRIVER) ? true : undefined,
          60_000, async () => node.pluginLogs());
      }
    });
    expect(nudgesLogged(manager)).toBe(1);
    expect(nudgesLogged(worker)).toBe(1);
    // The control: the same plugin without the nudge stays unknown to its engine.
    expect(await engineVolumeDrivers(worker)).toContain(DRIVER);
    expect(await engineVolumeDrivers(worker)).not.toContain(SILENT_DRIVER);
  }, 90_000);

  test("a task writes on one node; drained, it restarts on the other and reads the data", async () => {
    // Start on the worker: nothing was ever listed there, and it is not the manager.
    await manager.docker("node", "update", "--availability", "drain", manager.hostname);
    await timed("task running on the first node", async () => {
      await manager.docker(
        "service", "create", "--detach", "--name", SERVICE,
        "--mount", `type=volume,source=${VOLUME},target=/data,volume-driver=${DRIVER}`,
        "--network", "host", "--no-resolve-image",
        worker.engine?.image ?? "", "sh", "-c", TASK_SCRIPT,
      );
      expect(await eventually("the task to run", runningTaskNode, 90_000, describeService)).toBe(worker.hostname);
    });
    const note = `${storage?.pathFor(worker)}/${VOLUME}/note`;
    await eventually("the first task's note", async () => (existsSync(note) ? true : undefined), 30_000, describeService);
    expect(readFileSync(note, "utf8")).toBe("written-by-the-first-task\n");

    await manager.docker("node", "update", "--availability", "active", manager.hostname);
    await timed("task moved by a drain", async () => {
      await manager.docker("node", "update", "--availability", "drain", worker.hostname);
      expect(await eventually("the task to move", async () => ((await runningTaskNode()) === manager.hostname ? manager.hostname : undefined), 90_000, describeService)).toBe(manager.hostname);
    });
    const readBack = `${storage?.pathFor(manager)}/${VOLUME}/read-back`;
    await eventually("the second task to read the note", async () => (existsSync(readBack) ? true : undefined), 30_000, describeService);
    expect(readFileSync(readBack, "utf8")).toBe("written-by-the-first-task\n");
  }, 240_000);

  test("docker volume ls on both nodes shows the volume once, with scope global", async () => {
    for (const node of [manager, worker]) {
      // Another host's create reaches a node's listing within the posix index refresh (2 s).
      const listed = await eventually(`${VOLUME} in ${node.hostname}'s volume ls`, async () => {
        const lines = await listedVolume(node);
        return lines.length > 0 ? lines : undefined;
      }, 15_000);
      expect(listed).toEqual([`${VOLUME} ${DRIVER} global`]);
    }
  }, 60_000);

  test("docker volume rm on the node without the task is refused while the task runs", async () => {
    await eventually(`the drained task's container to go on ${worker.hostname}`, async () => ((await serviceContainers(worker)) === "" ? true : undefined), 60_000);
    const refused = await worker.dockerResult(["volume", "rm", VOLUME]);
    expect(refused.code).not.toBe(0);
    // The Err names the host that holds the volume.
    expect(refused.stderr).toContain(manager.hostname);
    expect(readFileSync(`${storage?.pathFor(worker)}/${VOLUME}/note`, "utf8")).toBe("written-by-the-first-task\n");
    expect(await runningTaskNode()).toBe(manager.hostname);
    expect(await listedVolume(manager)).toEqual([`${VOLUME} ${DRIVER} global`]);
  }, 120_000);

  test("after docker service rm, docker volume rm on one node removes the volume from both", async () => {
    await manager.docker("service", "rm", SERVICE);
    for (const node of [manager, worker]) {
      await eventually(`the service's containers to go on ${node.hostname}`, async () => ((await serviceContainers(node)) === "" ? true : undefined), 60_000);
    }
    await worker.docker("volume", "rm", VOLUME);
    await timed("volume gone from both listings", async () => {
      for (const node of [manager, worker]) {
        await eventually(`${VOLUME} to leave ${node.hostname}'s volume ls`, async () => ((await listedVolume(node)).length === 0 ? true : undefined), 15_000);
      }
    });
    for (const node of [manager, worker]) expect(existsSync(`${storage?.pathFor(node)}/${VOLUME}`)).toBe(false);
  }, 120_000);

  test("after an engine restart the plugin tells the engine again", async () => {
    // Last, once no volume is left to restore: the restarted engine then looks the plugin up
    // only because the plugin asks it to (the first test's control shows an engine that was
    // never asked does not know a plugin).
    const before = nudgesLogged(worker);
    await timed("plugin known again after an engine restart", async () => {
      await worker.engine?.restart();
      await eventually("a nudge after the restart", async () => (nudgesLogged(worker) > before ? true : undefined), 30_000, async () => worker.pluginLogs());
    });
    expect(worker.plugins.get(DRIVER)?.stderr()).toContain("stopped; will tell it about the driver again");
    expect(await engineVolumeDrivers(worker)).toContain(DRIVER);
  }, 120_000);
});
