import { defineCommand } from "citty";
import { mkdirSync } from "node:fs";
import { DEFAULTS, defaultSocketPath, UsageError } from "../config.ts";
import { renderSpec, SpecError, writeSpec } from "../protocol/spec.ts";
import { assertKnownArgs } from "./args.ts";
import { requireDirectoryOrAbsent, requirePemFile } from "./file-checks.ts";

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
    // The engine reads the TLS files only when it first uses the plugin: catch mistakes now.
    if (parsed["tls-ca"] !== undefined) requirePemFile("--tls-ca", parsed["tls-ca"], "certificate");
    if (parsed["tls-cert"] !== undefined) requirePemFile("--tls-cert", parsed["tls-cert"], "certificate");
    if (parsed["tls-key"] !== undefined) requirePemFile("--tls-key", parsed["tls-key"], "private key");
    requireDirectoryOrAbsent("--dir", parsed.dir ?? "/etc/docker/plugins");
    if (parsed["dry-run"]) {
      process.stdout.write(`# ${spec.path}\n${spec.contents}`);
      return;
    }
    mkdirSync(parsed.dir ?? "/etc/docker/plugins", { recursive: true, mode: 0o755 });
    await writeSpec(spec);
    process.stdout.write(`wrote ${spec.path}\n`);
  },
});
