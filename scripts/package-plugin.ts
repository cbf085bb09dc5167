// Builds a Docker managed-plugin directory (config.json + rootfs/) around the compiled
// binary: `docker plugin create NAME DIR` installs it. Prints the directory's path.
// Usage: bun scripts/package-plugin.ts [OUT_DIR]   (default dist/managed-plugin)

import { chmodSync, copyFileSync, existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

const root = resolve(import.meta.dir, "..");
const binary = join(root, "dist/docker-quobyte-plugin");
const out = resolve(process.argv[2] ?? join(root, "dist/managed-plugin"));
const rootfs = join(out, "rootfs");
/** Socket name inside the plugin: the host path adds ~85 characters, so keep it short. */
const SOCKET = "dqp.sock";

if (!existsSync(binary)) throw new Error(`${binary} is missing: run npm run build first`);

/** The shared libraries the binary loads (glibc), as `ldd` resolves them on this host. */
async function libraries(): Promise<string[]> {
  const ldd = Bun.spawn(["ldd", binary], { stdout: "pipe", stderr: "pipe" });
  const text = await new Response(ldd.stdout).text();
  if ((await ldd.exited) !== 0) throw new Error(`ldd ${binary} failed`);
  return [...text.matchAll(/(\/\S+\.so[.\d]*)/g)].map((m) => m[1] ?? "").filter(Boolean);
}

rmSync(out, { recursive: true, force: true });
for (const dir of ["usr/local/bin", "etc", "tmp", "data", "run/docker/plugins", "proc", "dev", "sys"]) {
  mkdirSync(join(rootfs, dir), { recursive: true });
}
chmodSync(join(rootfs, "tmp"), 0o1777);
copyFileSync(binary, join(rootfs, "usr/local/bin/docker-quobyte-plugin"));
chmodSync(join(rootfs, "usr/local/bin/docker-quobyte-plugin"), 0o755);
for (const lib of await libraries()) {
  const target = join(rootfs, lib);
  mkdirSync(dirname(target), { recursive: true });
  copyFileSync(lib, target);
}
// Account lookups (socket group, volume owners) read these files.
writeFileSync(join(rootfs, "etc/passwd"), "root:x:0:0:root:/root:/nonexistent\nnobody:x:65534:65534:nobody:/nonexistent:/nonexistent\n");
writeFileSync(join(rootfs, "etc/group"), "root:x:0:\nnogroup:x:65534:\n");

const setting = (name: string, description: string, value = "") => ({ name, description, settable: ["value"], value });
const config = {
  description: "Docker volume plugin for Quobyte-style shared storage",
  documentation: "https://docs.docker.com/engine/extend/",
  entrypoint: [
    "/usr/local/bin/docker-quobyte-plugin",
    "serve",
    "--socket",
    `/run/docker/plugins/${SOCKET}`,
    "--state-dir",
    "/data/state",
    "--log-format",
    "json",
    // The engine always reports a managed plugin to Swarm; there is nothing to nudge.
    "--engine-socket",
    "none",
  ],
  // Paths handed to the engine must lie under propagatedMount; for quobyte set
  // args to ["--path", "/data/mnt"] with the client mount propagated there.
  args: { name: "args", description: "Extra serve flags", settable: ["value"], value: ["--path", "/data/volumes"] },
  env: [
    setting("QUOBYTE_API_URL", "Quobyte management API URL (selects the quobyte backend)"),
    setting("QUOBYTE_API_USER", "API user", "admin"),
    setting("QUOBYTE_API_PASSWORD", "API password (visible in docker plugin inspect: prefer a credentials mount)"),
    setting("QUOBYTE_TENANT_ID", "Tenant name or UUID"),
    setting("QUOBYTE_VOLUME_CONFIG_NAME", "Volume configuration", "BASE"),
    setting("QUOBYTE_REGISTRY", "Registry for mount-all"),
  ],
  interface: { socket: SOCKET, types: ["docker.volumedriver/1.0"] },
  linux: { capabilities: ["CAP_SYS_ADMIN"], devices: [{ path: "/dev/fuse" }] },
  mounts: [],
  network: { type: "host" },
  propagatedMount: "/data",
};
writeFileSync(join(out, "config.json"), `${JSON.stringify(config, null, 2)}\n`);
console.log(out);

