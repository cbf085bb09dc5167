import { existsSync } from "node:fs";
import { unlink } from "node:fs/promises";
import { isAbsolute, join } from "node:path";
import { writeFileAtomic } from "../system/atomic-file.ts";
import { tlsPairProblem } from "./tcp-listener.ts";

export interface SpecRequest {
  name: string;
  dir: string;
  address: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  /** Allows plain tcp:// and unverified https://. */
  insecure?: boolean;
}

export interface SpecFile {
  path: string;
  contents: string;
  /** The other spec form of the same name; the engine prefers .spec over .json, so it must go. */
  conflicting: string;
}

/** A refused spec: the operator must change the flags. */
export class SpecError extends Error {
  override readonly name = "SpecError";
}

/**
 * Renders the discovery file the engine reads from /etc/docker/plugins: `<name>.spec`
 * holding an address, or `<name>.json` with a TLSConfig when TLS files are given. Pure.
 * Refuses what would silently be insecure: plain tcp:// (anyone on the network could
 * create, mount and delete volumes), https:// in a .spec (the engine skips certificate
 * verification then), and a TLSConfig without a CA (same).
 */
export function renderSpec(request: SpecRequest): SpecFile {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(request.name)) {
    throw new SpecError(`--name ${JSON.stringify(request.name)} must be letters, digits, "_", "." or "-"`);
  }
  let url: URL;
  try {
    url = new URL(request.address);
  } catch {
    throw new SpecError(`--address ${JSON.stringify(request.address)} is not a URL such as unix:///run/quobyte.sock or https://host:8443`);
  }
  const tls = request.tlsCa !== undefined || request.tlsCert !== undefined || request.tlsKey !== undefined;
  const specPath = join(request.dir, `${request.name}.spec`);
  const jsonPath = join(request.dir, `${request.name}.json`);

  if (url.protocol === "unix:") {
    if (tls) throw new SpecError("TLS files apply to https:// addresses, not unix://");
    if (!isAbsolute(url.pathname) || url.pathname === "/") throw new SpecError(`unix address ${request.address} needs an absolute socket path`);
    return { path: specPath, contents: `unix://${url.pathname}\n`, conflicting: jsonPath };
  }
  if (url.protocol !== "tcp:" && url.protocol !== "https:") {
    throw new SpecError(`--address scheme ${url.protocol} is not one of unix://, tcp://, https://`);
  }
  if (!url.port) throw new SpecError(`--address ${request.address} needs a port`);
  if (url.pathname !== "" && url.pathname !== "/") {
    throw new SpecError(`--address ${request.address} has a path; the engine drops it, so it cannot be used`);
  }
  const hostPort = `${url.hostname}:${url.port}`;
  if (url.protocol === "tcp:") {
    if (tls) throw new SpecError("the engine speaks plain HTTP to tcp:// even with TLS files; use an https:// address");
    if (!request.insecure) {
      throw new SpecError("a tcp:// address is plain, unauthenticated HTTP: anyone who reaches it controls your volumes. Use https:// with --tls-ca, or pass --insecure");
    }
    return { path: specPath, contents: `tcp://${hostPort}\n`, conflicting: jsonPath };
  }
  if (!tls) {
    if (!request.insecure) {
      throw new SpecError("an https:// address without --tls-ca is not verified by the engine; give --tls-ca (and --tls-cert/--tls-key for client auth), or pass --insecure");
    }
    return { path: specPath, contents: `https://${hostPort}\n`, conflicting: jsonPath };
  }
  if (request.tlsCa === undefined) throw new SpecError("a TLS config without --tls-ca makes the engine skip certificate verification; give --tls-ca");
  const pairing = tlsPairProblem(request);
  if (pairing !== undefined) throw new SpecError(pairing);
  for (const file of [request.tlsCa, request.tlsCert, request.tlsKey]) {
    if (file !== undefined && !isAbsolute(file)) throw new SpecError(`TLS file ${file} must be an absolute path (the engine reads it, not this command)`);
  }
  const tlsConfig: Record<string, unknown> = { InsecureSkipVerify: false, CAFile: request.tlsCa };
  if (request.tlsCert !== undefined) {
    tlsConfig.CertFile = request.tlsCert;
    tlsConfig.KeyFile = request.tlsKey;
  }
  const json = { Name: request.name, Addr: `https://${hostPort}`, TLSConfig: tlsConfig };
  return { path: jsonPath, contents: `${JSON.stringify(json, null, 2)}\n`, conflicting: specPath };
}

/** Writes the spec atomically (0644) and removes the other form of the same name. */
export async function writeSpec(spec: SpecFile): Promise<void> {
  await writeFileAtomic(spec.path, spec.contents, 0o644);
  if (existsSync(spec.conflicting)) await unlink(spec.conflicting);
}
