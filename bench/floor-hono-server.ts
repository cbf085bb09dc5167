// The second floor: what any plugin routed by Hono does before its own work. Bun.serve
// on a Unix socket, a Hono app with one route for every POST, the request body read and
// parsed as JSON (the engine's Name and ID are in it), one constant JSON reply. Run as its
// own process with the same bun binary as the plugin.
//
//   bun bench/floor-hono-server.ts <socket> <body-file>

import { readFileSync, unlinkSync } from "node:fs";
import { Hono } from "hono";

const [socket, bodyFile] = process.argv.slice(2);
if (!socket || !bodyFile) {
  process.stderr.write("usage: floor-hono-server <socket> <body-file>\n");
  process.exit(2);
}
const body = readFileSync(bodyFile, "utf8");
const reply = { status: 200, headers: { "Content-Type": "application/vnd.docker.plugins.v1.1+json" } };

const app = new Hono();
app.post("/*", async (c) => {
  const text = await c.req.raw.text();
  if (text.length > 0) JSON.parse(text);
  return new Response(body, reply);
});
const server = Bun.serve({ unix: socket, fetch: app.fetch });

function stop(): void {
  server.stop(true);
  try {
    unlinkSync(socket as string);
  } catch {}
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
