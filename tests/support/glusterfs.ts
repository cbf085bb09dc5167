// A real single-brick GlusterFS volume for multi-host tests, run without systemd.
//
// glusterd runs inside a private mount + network namespace: its state directory
// (/var/lib/glusterd), runtime directory (/run/gluster, on a private /run) and logs are
// bind-mounted from the test's work dir there, and its ports exist only in that network
// namespace. So a test never touches the machine's own GlusterFS state, two test runs
// at once cannot collide (port 24007, /run/glusterd.socket), and nothing is left in
// /var/lib/glusterd afterwards. The brick address is the
// machine's hostname (GlusterFS refuses 127.0.0.1 and localhost); inside the namespace it
// resolves through /etc/hosts to the namespace's own loopback.

import { cp, mkdir } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { type NsHolder, startHolder } from "./ns-holder.ts";

const GLUSTER = "/usr/sbin/gluster";
const GLUSTERD = "/usr/sbin/glusterd";

export interface GlusterVolume {
  /** Network + mount namespaces where glusterd, the brick and every client run. */
  readonly storage: NsHolder;
  /** `host:/volume` as given to mount -t glusterfs. */
  readonly source: string;
  readonly brick: string;
  /** Mounts the volume at `dir` inside `host`'s mount namespace (its own FUSE client). */
  mountInto(host: NsHolder, dir: string): Promise<void>;
  /** Unmounts `dir` in `host` (the client process exits with it). */
  unmountFrom(host: NsHolder, dir: string): Promise<void>;
  /** Stops the volume, deletes it, stops glusterd and the brick by PID. Idempotent. */
  stop(): Promise<void>;
}

export function glusterInstalled(): boolean {
  return Bun.which(GLUSTERD) !== null && Bun.which(GLUSTER) !== null;
}

/** Starts glusterd in `workDir` and creates + starts one volume named `name`. */
export async function startGlusterVolume(workDir: string, name = "dqpshared"): Promise<GlusterVolume> {
  const lib = join(workDir, "glusterd-lib");
  const run = join(workDir, "glusterd-run");
  const logs = join(workDir, "glusterd-log");
  const brick = join(workDir, "brick");
  for (const dir of [lib, run, logs, brick]) await mkdir(dir, { recursive: true });
  // The package's hooks and option groups (never the machine's peers or volumes), so the
  // private glusterd behaves like the packaged one.
  for (const part of ["hooks", "groups"]) await cp(join("/var/lib/glusterd", part), join(lib, part), { recursive: true }).catch(() => {});

  const storage = await startHolder(["m", "n"]);
  let glusterd: ReturnType<typeof Bun.spawn> | undefined;
  let created = false;
  const gluster = (args: string[]) => storage.run([GLUSTER, "--mode=script", ...args], 60_000);
  const stop = async () => {
    if (created) {
      await gluster(["volume", "stop", name, "force"]).catch(() => {});
      await gluster(["volume", "delete", name]).catch(() => {});
      created = false;
    }
    glusterd?.kill("SIGTERM");
    await glusterd?.exited;
    // The brick process (glusterfsd) and anything else glusterd started live only here.
    await storage.stop();
  };
  try {
    await storage.run(["ip", "link", "set", "lo", "up"]);
    // A private /run: glusterd's CLI socket (/run/glusterd.socket) would otherwise be shared
    // with any other glusterd on the machine, and the CLI would talk to the wrong one.
    await storage.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/run"]);
    await storage.run(["mkdir", "-p", "/var/lib/glusterd", "/run/gluster", "/var/log/glusterfs"]);
    await storage.run(["mount", "--bind", lib, "/var/lib/glusterd"]);
    await storage.run(["mount", "--bind", run, "/run/gluster"]);
    await storage.run(["mount", "--bind", logs, "/var/log/glusterfs"]);
    glusterd = Bun.spawn([...storage.enter(), GLUSTERD, "-N", "--log-level", "WARNING"], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
    const deadline = Date.now() + 30_000;
    for (;;) {
      const ready = await gluster(["pool", "list"]).then(() => true, () => false);
      if (ready) break;
      if (glusterd.exitCode !== null) throw new Error(`glusterd exited with ${glusterd.exitCode}`);
      if (Date.now() > deadline) throw new Error("glusterd did not answer within 30 s");
      await Bun.sleep(200);
    }
    await gluster(["volume", "create", name, `${hostname()}:${brick}`, "force"]);
    created = true;
    await gluster(["volume", "start", name]);
  } catch (error) {
    await stop();
    throw error;
  }
  const source = `${hostname()}:/${name}`;
  return {
    storage,
    source,
    brick,
    async mountInto(host, dir) {
      await host.run(["mkdir", "-p", dir]);
      await host.run(["mount", "-t", "glusterfs", source, dir]);
    },
    async unmountFrom(host, dir) {
      await host.run(["umount", dir]).catch(() => host.run(["umount", "-l", dir]).catch(() => {}));
    },
    stop,
  };
}
