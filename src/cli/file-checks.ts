import { statSync } from "node:fs";
import { UsageError } from "../config.ts";
import { readTextFile } from "../env-file.ts";

/**
 * A directory flag may name a directory or nothing yet (it is created at start), never a
 * file: mkdir would fail later with the runtime's EEXIST text.
 */
export function requireDirectoryOrAbsent(flag: string, path: string): void {
  let isDirectory: boolean;
  try {
    isDirectory = statSync(path).isDirectory();
  } catch {
    return;
  }
  if (!isDirectory) throw new UsageError(`${flag} ${path} is a file, not a directory; name a directory (it is created when missing)`);
}

/**
 * Certificates and keys are checked where the flag is known: OpenSSL's own message for a
 * non-PEM file (NO_START_LINE) names neither the file nor the flag. Returns the text.
 */
export function requirePemFile(flag: string, path: string, kind: "certificate" | "private key"): string {
  const text = readTextFile(`${kind} file`, path, flag);
  const label = kind === "certificate" ? /-----BEGIN CERTIFICATE-----/ : /-----BEGIN [A-Z ]*PRIVATE KEY-----/;
  if (!label.test(text)) {
    throw new UsageError(`${flag} ${path} is not a PEM ${kind} (no "-----BEGIN ${kind === "certificate" ? "CERTIFICATE" : "PRIVATE KEY"}-----" line); convert it with openssl, e.g. \`openssl x509 -inform der -in FILE -out FILE.pem\``);
  }
  return text;
}
