import { defineCommand } from "citty";
import { existsSync, mkdirSync } from "node:fs";
import { DEFAULTS, defaultSocketPath, UsageError } from "../config.ts";
import { renderSpec, SpecError, writeSpec } from "../protocol/spec.ts";
import { assertKnownArgs } from "./args.ts";

const args = {
  name: { type: "string", description: "Driver name: the file is <dir>/<name>.spec or <name>.json", valueHint: "quobyte" },
  dir: { type: "string", description: "Directory the engine reads specs from", valueHint: "/etc/docker/plugins" },
  address: {
    type: "string",
    description: "unix:///PATH, tcp://HOST:PORT (needs --insecure) or https://HOST:PORT (needs --tls-ca); default unix:///run/docker/plugins/<name>.sock",
    valueHint: "URL",
  },
  "tls-ca": { type: "string", description: "CA that signed the plugin's certificate (writes <name>.json)", valueHint: "FILE" },
  "tls-cert": { type: "string", description: "Client certificate the engine presents (mutual TLS)", valueHint: "FILE" },
  "tls-key": { type: "string", description: "Key of the client certificate", valueHint: "FILE" },
  insecure: { type: "boolean", description: "Allow plain tcp:// or unverified https://" },
  "dry-run": { type: "boolean", description: "Print the file instead of writing it" },
} as const;

export default defineCommand({
  meta: { name: "write-spec", description: "Write the discovery file the engine reads from /etc/docker/plugins" },
  args,
  async run({ args: parsed, rawArgs }) {
    assertKnownArgs(rawArgs, args, parsed);
    const name = parsed.name ?? DEFAULTS.name;
    let spec;
    try {
      spec = renderSpec({
        name,
        dir: parsed.dir ?? "/etc/docker/plugins",
        address: parsed.address ?? `unix://${defaultSocketPath(name)}`,
        tlsCa: parsed["tls-ca"],
        tlsCert: parsed["tls-cert"],
        tlsKey: parsed["tls-key"],
        insecure: parsed.insecure === true,
      });
    } catch (error) {
      if (error instanceof SpecError) throw new UsageError(error.message);
      throw error;
    }
    // The engine reads the TLS files only when it first uses the plugin: catch typos now.
    for (const file of [parsed["tls-ca"], parsed["tls-cert"], parsed["tls-key"]]) {
      if (file !== undefined && !existsSync(file)) throw new UsageError(`TLS file ${file} does not exist`);
    }
    if (parsed["dry-run"]) {
      process.stdout.write(`# ${spec.path}\n${spec.contents}`);
      return;
    }
    mkdirSync(parsed.dir ?? "/etc/docker/plugins", { recursive: true, mode: 0o755 });
    await writeSpec(spec);
    process.stdout.write(`wrote ${spec.path}\n`);
  },
});
