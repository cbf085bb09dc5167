// What newer engines add around a plugin volume, on every engine of the matrix: volume-subpath
// (26+), `docker volume prune` with and without -a, labels kept through an engine restart, and
// every volume restored with its options and labels when the engine restarts while the storage
// (a real FUSE root: bindfs) is frozen with SIGSTOP or killed.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { mountCountOf, type PluginProcess, startPlugin, stopPlugin } from "./plugin-process.ts";
import { createWorkDir, type Engine, type Namespace, pidsWithCmdline, startEngineWithImage } from "./support/engine.ts";
import { type EngineFlavour, forEachEngine } from "./support/engine-versions.ts";

type Fate = "kept" | "removed";

/** What one `docker volume prune` did to unused volumes: ours, and the local driver's as a control. */
interface PruneOutcome {
  pluginNamed: Fate;
  pluginAnonymous: Fate;
  localNamed: Fate;
  localAnonymous: Fate;
}

const KEEPS_PLUGIN_VOLUMES = { pluginNamed: "kept", pluginAnonymous: "kept" } as const;

/**
 * Observed on each engine (README "Tested with"): prune only ever takes the local driver's
 * volumes, so unused plugin volumes stay until `docker volume rm`. 20.10 has no `prune -a`
 * and takes every unused local volume; from 23.0 plain prune takes only anonymous ones and
 * -a takes named ones too. Steps run in order, so -a sees what plain prune left.
 */
const PRUNE: Record<string, { plain: PruneOutcome; all?: PruneOutcome }> = {
  "20.10": { plain: { ...KEEPS_PLUGIN_VOLUMES, localNamed: "removed", localAnonymous: "removed" } },
  "26": {
    plain: { ...KEEPS_PLUGIN_VOLUMES, localNamed: "kept", localAnonymous: "removed" },
    all: { ...KEEPS_PLUGIN_VOLUMES, localNamed: "removed", localAnonymous: "removed" },
  },
  "28": {
    plain: { ...KEEPS_PLUGIN_VOLUMES, localNamed: "kept", localAnonymous: "removed" },
    all: { ...KEEPS_PLUGIN_VOLUMES, localNamed: "removed", localAnonymous: "removed" },
  },
};

/** The Host header each engine sends to a plugin socket (20.10.26+ and 23.0.7+ name one). */
const HOST_HEADER: Record<string, string> = { "20.10": "", "26": "plugin.moby.localhost", "28": "plugin.moby.localhost" };

/** volume-subpath arrived in 26.0 (API 1.45). */
const hasSubpath = (flavour: EngineFlavour): boolean => flavour.id !== "20.10";

forEachEngine((flavour) => {
  let workDir = "";
  let ns: Namespace;
  let engine: Engine;
  let plugin: PluginProcess | undefined;
  /** The directory bindfs mirrors; the test reads and writes volume data here. */
  let backing = "";
  /** The plugin's --path: a bindfs mount inside the engine's namespace. */
  let root = "";

  const socketPath = (): string => ns.fromOutside("/run/docker/plugins/quobyte.sock");

  async function docker(...args: string[]): Promise<string> {
    const result = await engine.docker(args, { timeoutMs: 90_000 });
    if (result.code !== 0) {
      throw new Error(
        `docker ${args.join(" ")} exited ${result.code}\n${result.stderr}\n--- plugin log:\n${plugin?.stderr().slice(-3000)}\n--- dockerd:\n${engine.log().slice(-3000)}`,
      );
    }
    return result.stdout.trim();
  }

  const mountsOf = (name: string): Promise<number> => mountCountOf(socketPath(), name);

  async function volumeNames(driver = "quobyte"): Promise<string[]> {
    return (await docker("volume", "ls", "-q", "--filter", `driver=${driver}`)).split("\n").filter(Boolean);
  }

  /** Creates a container with an anonymous volume at /scratch, removes it (not -v), returns the volume's name. */
  async function leftoverAnonymousVolume(driver: string): Promise<string> {
    const leaver = await docker("create", "--network", "none", "-v", "/scratch", "--volume-driver", driver, engine.image, "true");
    const name = await docker("inspect", "--format", "{{range .Mounts}}{{.Name}}{{end}}", leaver);
    expect(name).toMatch(/^[0-9a-f]{64}$/);
    await docker("rm", leaver);
    return name;
  }

  function bindfsPid(): number {
    const [pid] = pidsWithCmdline(backing);
    if (pid === undefined) throw new Error("bindfs is not running");
    return pid;
  }

  async function mountRoot(): Promise<void> {
    const mounted = await ns.run(["bindfs", backing, root]);
    if (mounted.code !== 0) throw new Error(`bindfs: ${mounted.stderr}`);
  }

  /** After bindfs died: drop its dead mount (inside the namespace) and mount a fresh one. */
  async function remountRoot(): Promise<void> {
    const unmounted = await ns.run(["umount", "-l", root]);
    if (unmounted.code !== 0) throw new Error(`umount ${root}: ${unmounted.stderr}`);
    await mountRoot();
  }

  beforeAll(async () => {
    workDir = await createWorkDir();
    backing = join(workDir, "backing");
    root = join(workDir, "root");
    await mkdir(backing);
    await mkdir(root);
    ({ ns, engine } = await startEngineWithImage(workDir, flavour));
    // Mounted inside the namespace: dockerd and the plugin must see it, the host need not.
    await mountRoot();
    plugin = await startPlugin(
      ["--backend", "posix", "--path", root, "--mount-check", "mountpoint", "--timeout", "20", "--state-dir", join(workDir, "state"), "--log-level", "debug", "--log-format", "json"],
      socketPath(),
      (argv) => ns.spawn(argv, { stdout: "pipe", stderr: "pipe" }),
    );
  }, 180_000);

  afterAll(async () => {
    for (const pid of pidsWithCmdline(backing)) process.kill(pid, "SIGCONT");
    const containers = (await engine?.docker(["ps", "-aq"]))?.stdout.split("\n").filter(Boolean) ?? [];
    if (containers.length > 0) await engine.docker(["rm", "-f", ...containers]);
    if (plugin) await stopPlugin(plugin);
    await engine?.destroy();
    // Ends bindfs too (it lives in the namespace); the mount goes with the namespace.
    await ns?.stop();
  }, 120_000);

  describe("features of newer engines", () => {
    test("the Host header the engine sends to a plugin socket", async () => {
      // A bare recorder beside the real plugin: the header is what differs between engines,
      // and the router must not depend on it (every other suite here passes on each engine).
      const hosts = new Set<string>();
      const recorder = Bun.serve({
        unix: ns.fromOutside("/run/docker/plugins/hostprobe.sock"),
        async fetch(request) {
          hosts.add(request.headers.get("host") ?? "");
          // With an empty Host the URL is the bare path: resolve it against any base.
          const path = new URL(request.url, "http://x").pathname;
          if (path === "/Plugin.Activate") return Response.json({ Implements: ["VolumeDriver"] });
          if (path === "/VolumeDriver.Get") {
            const { Name } = (await request.json()) as { Name: string };
            return Response.json({ Volume: { Name, Mountpoint: "" } });
          }
          return Response.json({});
        },
      });
      try {
        await docker("volume", "create", "-d", "hostprobe", "probed");
        await docker("volume", "rm", "probed");
      } finally {
        await recorder.stop(true);
      }
      expect([...hosts]).toEqual([HOST_HEADER[flavour.id] ?? `no HOST_HEADER entry for ${flavour.id}`]);
    });

    if (hasSubpath(flavour)) {
      test("volume-subpath mounts one subdirectory of a plugin volume", async () => {
        await docker("volume", "create", "-d", "quobyte", "withsub");
        await mkdir(join(backing, "withsub", "sub"));
        writeFileSync(join(backing, "withsub", "sub", "inner"), "inside\n");
        writeFileSync(join(backing, "withsub", "outer"), "outside\n");

        const mount = "type=volume,src=withsub,dst=/d,volume-driver=quobyte,volume-subpath=sub";
        const seen = await docker("run", "--rm", "--network", "none", "--mount", mount, engine.image, "sh", "-c", "ls /d && cat /d/inner && echo new > /d/written");
        expect(seen.split("\n")).toEqual(["inner", "inside"]);
        expect(readFileSync(join(backing, "withsub", "sub", "written"), "utf8")).toBe("new\n");
        expect(existsSync(join(backing, "withsub", "written"))).toBe(false);
        expect(await mountsOf("withsub")).toBe(0);

        // A subpath that does not exist, or one that climbs out, fails the run and leaks no mount.
        for (const sub of ["missing", "../withsub"]) {
          const bad = await engine.docker(["run", "--rm", "--network", "none", "--mount", `type=volume,src=withsub,dst=/d,volume-driver=quobyte,volume-subpath=${sub}`, engine.image, "true"]);
          expect(bad.code).not.toBe(0);
          expect(await mountsOf("withsub")).toBe(0);
        }
        expect(readdirSync(join(backing, "withsub")).sort()).toEqual(["outer", "sub"]);
        await docker("volume", "rm", "withsub");
      });
    } else {
      test("volume-subpath is refused before the plugin is asked (engine older than 26)", async () => {
        const result = await engine.docker(["run", "--rm", "--network", "none", "--mount", "type=volume,src=nosub,dst=/d,volume-driver=quobyte,volume-subpath=sub", engine.image, "true"]);
        expect(result.code).not.toBe(0);
        expect(result.stderr).toContain("volume-subpath");
        expect(existsSync(join(backing, "nosub"))).toBe(false);
        expect(await volumeNames()).not.toContain("nosub");
      });
    }

    test("volume prune never removes a plugin volume in use; what it does to unused ones is recorded", async () => {
      await docker("volume", "create", "-d", "quobyte", "inuse");
      await docker("volume", "create", "-d", "quobyte", "idle");
      await docker("volume", "create", "localidle");
      writeFileSync(join(backing, "idle", "keep"), "idle data\n");
      const holder = await docker("run", "-d", "--init", "--network", "none", "-v", "inuse:/data", engine.image, "sh", "-c", "echo held > /data/f && sleep 600");
      const anonymous = await leftoverAnonymousVolume("quobyte");
      const localAnonymous = await leftoverAnonymousVolume("local");

      const expected = PRUNE[flavour.id];
      if (expected === undefined) throw new Error(`no prune expectation for docker ${flavour.id}`);
      const check = async (args: string[], outcome: PruneOutcome): Promise<void> => {
        const report = await docker("volume", "prune", "-f", ...args);
        const ours = await volumeNames();
        const local = await volumeNames("local");
        const fate = (list: string[], name: string): Fate => (list.includes(name) ? "kept" : "removed");
        const observed: PruneOutcome = {
          pluginNamed: fate(ours, "idle"),
          pluginAnonymous: fate(ours, anonymous),
          localNamed: fate(local, "localidle"),
          localAnonymous: fate(local, localAnonymous),
        };
        console.log(`docker ${flavour.id}: volume prune ${args.join(" ")} -> ${JSON.stringify(observed)}`);
        expect(ours).toContain("inuse");
        expect(report).not.toContain("inuse");
        expect(observed).toEqual(outcome);
        expect(existsSync(join(backing, "idle", "keep"))).toBe(outcome.pluginNamed === "kept");
      };
      await check([], expected.plain);
      if (expected.all !== undefined) {
        await check(["-a"], expected.all);
      } else {
        const refused = await engine.docker(["volume", "prune", "-f", "-a"]);
        expect(refused.code).not.toBe(0);
      }

      expect(await mountsOf("inuse")).toBe(1);
      expect(readFileSync(join(backing, "inuse", "f"), "utf8")).toBe("held\n");
      await docker("rm", "-f", holder);
      const remaining = (await docker("volume", "ls", "-q")).split("\n");
      for (const name of [anonymous, "idle", "inuse", "localidle", localAnonymous]) {
        if (remaining.includes(name)) await docker("volume", "rm", name);
      }
    });

    test("labels and options survive an engine restart", async () => {
      await docker("volume", "create", "-d", "quobyte", "--label", "team=storage", "--label", "tier=gold", "-o", "mode=0750", "labelled");
      await engine.restart();
      const [inspected] = JSON.parse(await docker("volume", "inspect", "labelled"));
      expect(inspected.Labels).toEqual({ team: "storage", tier: "gold" });
      expect(inspected.Options).toEqual({ mode: "0750" });
      expect(await docker("volume", "ls", "-q", "--filter", "label=team=storage")).toBe("labelled");
      await docker("volume", "rm", "labelled");
    });

    // The worst moments for the engine's restore: storage that hangs, and storage that is gone.
    const outages = [
      { name: "frozen (SIGSTOP)", cut: (pid: number) => process.kill(pid, "SIGSTOP"), mend: (pid: number) => process.kill(pid, "SIGCONT") },
      { name: "dead (bindfs killed: ENOTCONN)", cut: (pid: number) => process.kill(pid, "SIGKILL"), mend: remountRoot },
    ];
    for (const outage of outages) {
      test(`an engine restart while the storage is ${outage.name} restores every volume with its options and labels`, async () => {
        const names = ["slow-a", "slow-b", "slow-c"];
        for (const [i, name] of names.entries()) {
          await docker("volume", "create", "-d", "quobyte", "--label", `n=${i}`, "-o", `mode=07${i}0`, name);
        }
        const pid = bindfsPid();
        const restoreErrorsBefore = engine.log().split("Error restoring volume").length;
        outage.cut(pid);
        try {
          const logBefore = plugin?.stderr().length ?? 0;
          await engine.restart();
          // Storage still out: the engine's restore asked Get for each volume, and each got an answer.
          const gets = (plugin?.stderr().slice(logBefore) ?? "")
            .split("\n")
            .filter((line) => line.includes('"endpoint":"VolumeDriver.Get"'))
            .map((line) => JSON.parse(line) as { volume: string; outcome: string });
          for (const name of names) expect(gets).toContainEqual(expect.objectContaining({ volume: name, outcome: "ok" }));
          expect(gets.filter((g) => g.outcome !== "ok")).toEqual([]);
          const inspected = JSON.parse(await docker("volume", "inspect", ...names)) as { Name: string; Labels: unknown; Options: unknown }[];
          expect(inspected.map((v) => [v.Name, v.Labels, v.Options])).toEqual(
            names.map((name, i) => [name, { n: String(i) }, { mode: `07${i}0` }]),
          );
          expect(engine.log().split("Error restoring volume").length).toBe(restoreErrorsBefore);
        } finally {
          await outage.mend(pid);
        }
        // Once the storage is back, the restored volumes are usable as before.
        const mode = await docker("run", "--rm", "--network", "none", "-v", "slow-b:/data", engine.image, "stat", "-c", "%a", "/data");
        expect(mode).toBe("710");
        for (const name of names) await docker("volume", "rm", name);
      }, 180_000);
    }
  });
});
