import { defineCommand } from "citty";
import pkg from "../../package.json" with { type: "json" };
import install from "./install.ts";
import mountAll from "./mount-all.ts";
import serve from "./serve.ts";
import status from "./status.ts";
import writeSpec from "./write-spec.ts";

export const rootCommand = defineCommand({
  meta: {
    name: "docker-quobyte-plugin",
    version: pkg.version,
    description: "Docker volume plugin for Quobyte-style shared storage (one host mount, one directory per volume)",
  },
  subCommands: { serve, "mount-all": mountAll, "write-spec": writeSpec, status, install },
});
