// The floor: a bare Bun.serve on a Unix socket answering every request with one constant
// JSON body. Run as its own process with the same bun binary as the plugin, so the two are
// measured the same way. It does not even read the request body.
//
//   bun bench/floor-server.ts <socket> [body-file]
//
// With a body file it answers that file's bytes (used as the floor for large List replies).

import { readFileSync, unlinkSync } from "node:fs";

const [socket, bodyFile] = process.argv.slice(2);
if (!socket) {
  process.stderr.write("usage: floor-server <socket> [body-file]\n");
  process.exit(2);
}
const body = bodyFile ? readFileSync(bodyFile) : '{"Mountpoint":"/tmp/dqp-bench-000000/volumes/hot-0"}';
const headers = { "Content-Type": "application/vnd.docker.plugins.v1.1+json" };

const server = Bun.serve({
  unix: socket,
  fetch: () => new Response(body, { headers }),
});

function stop(): void {
  server.stop(true);
  try {
    unlinkSync(socket as string);
  } catch {}
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
