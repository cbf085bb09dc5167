// A two-node Docker Swarm on shared storage: two dockerd 20.10 in two network namespaces
// joined by a veth pair, each node in its own mount and UTS namespace with its own plugin
// instances, found by its own engine through its own /run/docker/plugins. Nobody runs
// `docker volume ls` before a service: the plugins tell their engines about themselves
// (src/system/engine-nudge.ts), or the scheduler would leave the task Pending.
// The same scenarios run for posix --scope global on a real GlusterFS volume (driver
// "quobyte", as in the issue) and for the quobyte backend against the fake API with one
// mount tree (driver "qb").

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { startFakeQuobyte } from "../support/fake-quobyte.ts";
import { type GlusterVolume, startGlusterVolume } from "../support/glusterfs.ts";
import { NSENTER } from "../support/ns-holder.ts";
import { writeQuobyteEnvFile } from "../support/quobyte-env-file.ts";
import { runArgv } from "./support/engine.ts";
import { type SwarmNode as Node, eventually, SwarmNode } from "./support/swarm-node.ts";
import { createVethPair, type VethPair } from "./support/veth-pair.ts";

/** Started with the nudge turned off: the control that shows the engine would not know it. */
const SILENT_DRIVER = "quiet";
const SILENT_SERVICE = "quietsvc";
// The first task writes the note; any later one copies it to read-back. Exits at once on SIGTERM.
const TASK_SCRIPT = 'if [ -f /data/note ]; then cat /data/note > /data/read-back; else echo written-by-the-first-task > /data/note; fi; trap "exit 0" TERM; sleep 3600 & wait';
const NOTE = "written-by-the-first-task\n";

/** One backend under test: a driver name on every node, its volume and service names. */
interface Backend {
  readonly driver: string;
  readonly volume: string;
  readonly service: string;
  /** Where `node`'s plugin keeps the volumes, as the test process sees it. */
  storagePath(node: Node): string;
  pluginArgs(node: Node): string[];
  /** Runs on each node before its plugins start (its own client mount of the storage). */
  prepare?(node: Node): Promise<void>;
  /** Runs on each node before it is torn down. */
  release?(node: Node): Promise<void>;
  /** Stops what the backend started and removes its files. */
  destroy(): Promise<void>;
}

/**
 * posix --scope global on a real GlusterFS volume (tests/support/glusterfs.ts): glusterd and
 * its brick in a namespace of their own, and each node with its own FUSE client mount in its
 * own mount namespace. The client runs in the storage's network namespace (where GlusterFS's
 * ports are), the node's engine in the node's: storage traffic and swarm traffic apart.
 */
async function glusterBackend(): Promise<Backend> {
  const dir = await mkdtemp("/tmp/dqp-swarm-gluster-");
  let gluster: GlusterVolume;
  try {
    gluster = await startGlusterVolume(dir, "dqpswarm");
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  const mountPoint = (node: Node): string => `${node.workDir}/gluster`;
  const inNode = async (node: Node, argv: string[]): Promise<void> => {
    const result = await runArgv([NSENTER, "-t", String(node.ns.pid), "-m", `--net=/proc/${gluster.storage.pid}/ns/net`, "--", ...argv]);
    if (result.code !== 0) throw new Error(`${node.hostname}: ${argv.join(" ")} exited ${result.code}: ${result.stderr.trim()}`);
  };
  return {
    driver: "quobyte",
    volume: "db",
    service: "dbsvc",
    storagePath: (node) => node.ns.fromOutside(mountPoint(node)),
    pluginArgs: (node) => ["--backend", "posix", "--scope", "global", "--path", mountPoint(node), "--mount-check", "mountpoint"],
    async prepare(node) {
      await inNode(node, ["mkdir", "-p", mountPoint(node)]);
      await inNode(node, ["mount", "-t", "glusterfs", gluster.source, mountPoint(node)]);
    },
    async release(node) {
      // The FUSE client exits with its mount; a busy one goes lazily.
      await inNode(node, ["umount", mountPoint(node)]).catch(() => inNode(node, ["umount", "-l", mountPoint(node)]));
    },
    async destroy() {
      await gluster.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The fake API on loopback and one directory tree standing in for every host's Quobyte mount. */
async function quobyteBackend(): Promise<Backend> {
  const dir = await mkdtemp("/tmp/dqp-swarm-quobyte-");
  const mountTree = `${dir}/mnt`;
  await mkdir(mountTree);
  const fake = await startFakeQuobyte({ mountTree, mountDelayMs: 200 });
  const envFile = `${dir}/docker-quobyte.env`;
  writeQuobyteEnvFile(envFile, { apiUrl: fake.url, mountPath: mountTree });
  return {
    driver: "qb",
    volume: "qdb",
    service: "qdbsvc",
    storagePath: () => mountTree,
    pluginArgs: () => ["--env-file", envFile, "--mount-check", "none"],
    async destroy() {
      await fake.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

let pair: VethPair | undefined;
const backends: Backend[] = [];
let manager: Node;
let worker: Node;
const timings: Record<string, number> = {};
const suiteStarted = performance.now();

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

/** The node running `service`'s task, once it reports Running. */
async function runningTaskNode(service: string): Promise<string | undefined> {
  const tasks = await manager.docker("service", "ps", service, "--filter", "desired-state=running", "--format", "{{.Node}}|{{.CurrentState}}");
  const running = tasks.split("\n").filter((line) => line.split("|")[1]?.startsWith("Running"));
  return running.length === 1 ? running[0]?.split("|")[0] : undefined;
}

async function taskRunsOn(service: string, node: Node): Promise<true | undefined> {
  return (await runningTaskNode(service)) === node.hostname ? true : undefined;
}

function describeService(service: string): () => Promise<string> {
  return async () => {
    const ps = await manager.dockerResult(["service", "ps", "--no-trunc", service]);
    return `${ps.stdout}${ps.stderr}\n${manager.pluginLogs()}\n${worker.pluginLogs()}`;
  };
}

/** `docker volume ls` on `node` as "name driver scope" lines for `volume`. */
async function listedVolume(node: Node, volume: string): Promise<string[]> {
  const lines = await node.docker("volume", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}");
  return lines.split("\n").filter((line) => line.startsWith(`${volume} `));
}

/** IDs of `service`'s containers on `node`, running or not. */
async function serviceContainers(node: Node, service: string): Promise<string> {
  return node.docker("ps", "-aq", "--filter", `label=com.docker.swarm.service.name=${service}`);
}

function nudgesLogged(node: Node, driver: string): number {
  return node.plugins.get(driver)?.stderr().split("\n").filter((line) => line.includes("now knows driver")).length ?? 0;
}

async function startPlugins(node: Node): Promise<void> {
  for (const backend of backends) {
    await backend.prepare?.(node);
    await node.startPlugin(backend.driver, backend.pluginArgs(node));
  }
}

beforeAll(async () => {
  await timed("setup", async () => {
    pair = await createVethPair();
    backends.push(await glusterBackend(), await quobyteBackend());

    manager = await SwarmNode.create("dqp-swarm-a", pair.a);
    worker = await SwarmNode.create("dqp-swarm-b", pair.b);
    // The manager's plugins start before its engine (as when the plugin's unit comes up
    // first), the worker's after: the nudge has to cover both orders.
    await startPlugins(manager);
    await manager.startEngine();
    await worker.startEngine();
    await startPlugins(worker);
    // The control: a plugin on both nodes that never nudges. The engine looks up every
    // plugin it finds when it lists volumes, so it starts only after the nudges happened.
    for (const node of [manager, worker]) {
      for (const backend of backends) {
        await eventually(`${node.hostname}'s nudge for ${backend.driver}`, async () => (nudgesLogged(node, backend.driver) === 1 ? true : undefined), 30_000, async () => node.pluginLogs());
      }
      await mkdir(`${node.workDir}/quiet-volumes`);
      await node.startPlugin(SILENT_DRIVER, ["--backend", "posix", "--path", `${node.workDir}/quiet-volumes`], { nudge: false });
    }

    // No task history: a node's engine refuses `volume rm` itself while a stopped task's
    // container still references the volume, and the request would never reach the plugin.
    await manager.docker("swarm", "init", "--task-history-limit", "0", "--advertise-addr", manager.address, "--listen-addr", `${manager.address}:2377`);
    const token = await manager.docker("swarm", "join-token", "-q", "worker");
    await worker.docker("swarm", "join", "--token", token, "--advertise-addr", worker.address, "--listen-addr", `${worker.address}:2377`, `${manager.address}:2377`);
  });
}, 240_000);

afterAll(async () => {
  for (const service of [SILENT_SERVICE, ...backends.map((backend) => backend.service)]) {
    await manager?.dockerResult(["service", "rm", service]).catch(() => {});
  }
  for (const node of [worker, manager]) {
    if (!node) continue;
    await node.stopPlugins();
    // Containers hold the storage mounts busy; the engine goes first.
    await node.engine?.stop();
    for (const backend of backends) await backend.release?.(node).catch(() => {});
    await node.destroy();
  }
  await pair?.destroy();
  for (const backend of backends) await backend.destroy();
  timings.total = Math.round(performance.now() - suiteStarted) / 1000;
  console.log(`[swarm e2e] seconds: ${JSON.stringify(timings)}`);
}, 180_000);

test("both engines report the plugins to the swarm without anyone listing volumes", async () => {
  await timed("plugins reported to the swarm", async () => {
    for (const node of [manager, worker]) {
      await eventually(`${node.hostname} to report its volume plugins to the swarm`, async () => {
        const reported = await swarmVolumePlugins(node);
        return backends.every((backend) => reported.includes(backend.driver)) ? true : undefined;
      }, 60_000, async () => node.pluginLogs());
    }
  });
  for (const node of [manager, worker]) {
    for (const backend of backends) expect(nudgesLogged(node, backend.driver)).toBe(1);
    // The control: the same plugin without the nudge stays unknown to its engine...
    const known = await engineVolumeDrivers(node);
    for (const backend of backends) expect(known).toContain(backend.driver);
    expect(known).not.toContain(SILENT_DRIVER);
  }
  // ...and a task that needs it is never placed: the symptom.
  await manager.docker(
    "service", "create", "--detach", "--name", SILENT_SERVICE,
    "--mount", `type=volume,source=quietvol,target=/data,volume-driver=${SILENT_DRIVER}`,
    "--network", "host", "--no-resolve-image", manager.engine?.image ?? "", "sleep", "600",
  );
  const state = await eventually("the control task's scheduling verdict", async () => {
    const tasks = await manager.docker("service", "ps", "--no-trunc", "--format", "{{.CurrentState}}|{{.Error}}", SILENT_SERVICE);
    return tasks.includes("missing plugin") ? tasks : undefined;
  }, 30_000, describeService(SILENT_SERVICE));
  expect(state).toMatch(/^Pending.*no suitable node \(missing plugin on 2 nodes\)/);
  await manager.docker("service", "rm", SILENT_SERVICE);
}, 90_000);

for (const index of [0, 1]) {
  // describe() runs before beforeAll: reach the backend through its index.
  const backend = (): Backend => {
    const found = backends[index];
    if (!found) throw new Error("backends not set up");
    return found;
  };
  describe(index === 0 ? "posix --scope global on GlusterFS" : "quobyte against the fake API, one mount tree", () => {
    test("a task writes on one node; drained, it restarts on the other and reads the data", async () => {
      const { driver, volume, service, storagePath } = backend();
      // Start on the worker (not the manager, nothing ever listed there), then drain it.
      await manager.docker("node", "update", "--availability", "active", worker.hostname);
      await manager.docker("node", "update", "--availability", "drain", manager.hostname);
      await timed(`${driver}: task running on the first node`, async () => {
        await manager.docker(
          "service", "create", "--detach", "--name", service,
          "--mount", `type=volume,source=${volume},target=/data,volume-driver=${driver}`,
          "--network", "host", "--no-resolve-image",
          worker.engine?.image ?? "", "sh", "-c", TASK_SCRIPT,
        );
        await eventually(`the task to run on ${worker.hostname}`, () => taskRunsOn(service, worker), 90_000, describeService(service));
      });
      const note = `${storagePath(worker)}/${volume}/note`;
      await eventually("the first task's note", async () => (existsSync(note) ? true : undefined), 30_000, describeService(service));
      expect(readFileSync(note, "utf8")).toBe(NOTE);

      await manager.docker("node", "update", "--availability", "active", manager.hostname);
      await timed(`${driver}: task moved by a drain`, async () => {
        await manager.docker("node", "update", "--availability", "drain", worker.hostname);
        await eventually(`the task to move to ${manager.hostname}`, () => taskRunsOn(service, manager), 90_000, describeService(service));
      });
      const readBack = `${storagePath(manager)}/${volume}/read-back`;
      await eventually("the second task to read the note", async () => (existsSync(readBack) ? true : undefined), 30_000, describeService(service));
      expect(readFileSync(readBack, "utf8")).toBe(NOTE);
    }, 240_000);

    test("docker volume ls on both nodes shows the volume once, with scope global", async () => {
      const { driver, volume } = backend();
      for (const node of [manager, worker]) {
        // Another host's create reaches a node's listing within the backend's refresh.
        const listed = await eventually(`${volume} in ${node.hostname}'s volume ls`, async () => {
          const lines = await listedVolume(node, volume);
          return lines.length > 0 ? lines : undefined;
        }, 20_000);
        expect(listed).toEqual([`${volume} ${driver} global`]);
      }
    }, 60_000);

    test("docker volume rm on the node without the task is refused while the task runs", async () => {
      const { driver, volume, service, storagePath } = backend();
      await eventually(`the drained task's container to go on ${worker.hostname}`, async () => ((await serviceContainers(worker, service)) === "" ? true : undefined), 60_000);
      const refused = await worker.dockerResult(["volume", "rm", volume]);
      expect(refused.code).not.toBe(0);
      // The Err names the host that holds the volume.
      expect(refused.stderr).toContain(manager.hostname);
      expect(readFileSync(`${storagePath(worker)}/${volume}/note`, "utf8")).toBe(NOTE);
      expect(await runningTaskNode(service)).toBe(manager.hostname);
      expect(await listedVolume(manager, volume)).toEqual([`${volume} ${driver} global`]);
    }, 120_000);

    test("after docker service rm, docker volume rm on one node removes the volume from both", async () => {
      const { driver, volume, service, storagePath } = backend();
      await manager.docker("service", "rm", service);
      for (const node of [manager, worker]) {
        await eventually(`the service's containers to go on ${node.hostname}`, async () => ((await serviceContainers(node, service)) === "" ? true : undefined), 60_000);
      }
      await worker.docker("volume", "rm", volume);
      await timed(`${driver}: volume gone from both listings`, async () => {
        for (const node of [manager, worker]) {
          await eventually(`${volume} to leave ${node.hostname}'s volume ls`, async () => ((await listedVolume(node, volume)).length === 0 ? true : undefined), 20_000);
        }
      });
      // Through each node's own client (GlusterFS caches names for up to 1 s).
      for (const node of [manager, worker]) {
        await eventually(`${volume}'s directory to go for ${node.hostname}`, async () => (existsSync(`${storagePath(node)}/${volume}`) ? undefined : true), 10_000);
      }
    }, 120_000);
  });
}

test("after an engine restart the plugins tell the engine again", async () => {
  // Last, once no volume is left to restore: the restarted engine then looks the plugins up
  // only because they ask it to (the first test's control shows an engine that was never
  // asked does not know a plugin).
  const before = backends.map((backend) => nudgesLogged(worker, backend.driver));
  await timed("plugins known again after an engine restart", async () => {
    await worker.engine?.restart();
    await eventually("a nudge after the restart from every plugin", async () =>
      backends.every((backend, i) => nudgesLogged(worker, backend.driver) > (before[i] ?? 0)) ? true : undefined,
      30_000, async () => worker.pluginLogs());
  });
  for (const backend of backends) {
    expect(worker.plugins.get(backend.driver)?.stderr()).toContain("stopped; will tell it about the driver again");
    expect(await engineVolumeDrivers(worker)).toContain(backend.driver);
  }
}, 120_000);
