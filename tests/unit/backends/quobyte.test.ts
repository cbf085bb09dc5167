import { runBackendContract } from "./contract.ts";
import { makeQuobyteHarness } from "./quobyte-harness.ts";

runBackendContract({
  name: "quobyte (fake API, --mount-check none)",
  make: async () => {
    const h = await makeQuobyteHarness();
    return { backend: h.newBackend(), root: h.mount, reopen: async () => h.newBackend(), cleanup: () => h.cleanup() };
  },
  validOptions: { user: "nobody", group: "nogroup", mode: "0700", size: "1G", on_remove: "delete" },
});
