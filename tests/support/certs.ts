import { join } from "node:path";

async function openssl(dir: string, args: string[]): Promise<void> {
  const proc = Bun.spawn(["openssl", ...args], { cwd: dir, stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`openssl ${args.join(" ")}: ${stderr}`);
}

/**
 * A CA `<ca>.pem`/`<ca>.key` in `dir`, and certificates it signs: a server certificate
 * for 127.0.0.1 (`<prefix>server.pem`/`.key`) and a client one (`<prefix>client.pem`/`.key`).
 */
export async function makeCertificates(dir: string, ca = "ca", prefix = ""): Promise<void> {
  await openssl(dir, ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", `/CN=dqp-test-${ca}`, "-days", "1", "-keyout", `${ca}.key`, "-out", `${ca}.pem`]);
  for (const [name, ext] of [
    ["server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"],
    ["client", "extendedKeyUsage=clientAuth"],
  ] as const) {
    const base = `${prefix}${name}`;
    await Bun.write(join(dir, `${base}.ext`), `${ext}\n`);
    await openssl(dir, ["req", "-newkey", "rsa:2048", "-nodes", "-subj", `/CN=dqp-${base}`, "-keyout", `${base}.key`, "-out", `${base}.csr`]);
    await openssl(dir, ["x509", "-req", "-in", `${base}.csr`, "-CA", `${ca}.pem`, "-CAkey", `${ca}.key`, "-CAcreateserial", "-days", "1", "-extfile", `${base}.ext`, "-out", `${base}.pem`]);
  }
}
