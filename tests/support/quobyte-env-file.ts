import { writeFileSync } from "node:fs";
import { DEFAULT_USER } from "./fake-quobyte.ts";

/**
 * Writes the operator's env file for a plugin on the fake API, as with the original Go
 * plugin: the password lives only here (0600), never in argv.
 */
export function writeQuobyteEnvFile(path: string, settings: { apiUrl: string; mountPath: string; tenant?: string }): void {
  writeFileSync(
    path,
    [
      `QUOBYTE_API_URL=${settings.apiUrl}`,
      `QUOBYTE_API_USER=${DEFAULT_USER.name}`,
      `QUOBYTE_API_PASSWORD=${DEFAULT_USER.password}`,
      `QUOBYTE_TENANT_ID=${settings.tenant ?? "My Tenant"}`,
      `QUOBYTE_MOUNT_PATH=${settings.mountPath}`,
    ].join("\n"),
    { mode: 0o600 },
  );
}
