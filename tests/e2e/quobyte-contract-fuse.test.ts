// The backend contract for the quobyte backend with --mount-check quobyte: the fake API
// materialises volumes in a directory that a FUSE stand-in for the Quobyte client
// (bindfs mounted as fuse.quobyte) exposes at the mount path.

import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { MountMonitor } from "../../src/system/mount-health.ts";
import { mountAt } from "../../src/system/mountinfo.ts";
import { makeTempDir, removeTempDir } from "../support/tmp.ts";
import { runBackendContract } from "../unit/backends/contract.ts";
import { makeQuobyteHarness } from "../unit/backends/quobyte-harness.ts";
import { pidsWithCmdline, runArgv } from "./support/engine.ts";


runBackendContract({
  name: "quobyte (fake API, --mount-check quobyte on a FUSE stand-in)",
  make: async () => {
    const h = await makeQuobyteHarness();
    // The fake writes volumes into h.mount; the plugin sees them through a fuse.quobyte
    // mount. No attribute caching: the contract compares directory times before and after.
    const mnt = join(await makeTempDir("dqp-qfuse-"), "mnt");
    await mkdir(mnt);
    const bind = await runArgv(["bindfs", "-o", "fsname=quobyte@registry:7861/,subtype=quobyte,attr_timeout=0,entry_timeout=0,negative_timeout=0", h.mount, mnt]);
    if (bind.code !== 0) throw new Error(`bindfs: ${bind.stderr}`);
    const options = () => ({ mountPath: mnt, monitor: new MountMonitor(mnt, "quobyte", 2000) });
    return {
      backend: h.newBackend(options()),
      root: mnt,
      reopen: async () => h.newBackend(options()),
      cleanup: async () => {
        for (const pid of pidsWithCmdline(h.mount)) process.kill(pid, "SIGKILL");
        while (await mountAt(mnt)) await runArgv(["umount", "-l", mnt]);
        await removeTempDir(join(mnt, ".."));
        await h.cleanup();
      },
    };
  },
  validOptions: { user: "nobody", group: "nogroup", mode: "0700", size: "1G", on_remove: "delete" },
});
