// Run by systemd-socket-activate: does Bun.serve answer HTTP on the listening socket it
// inherits as fd 3? The bench asks this on the bun it runs, rather than trusting a note:
// if a Bun release starts honouring `fd`, the socket-activated target's second branch
// (serve the inherited socket directly) becomes possible and the bench says so.
//
//   systemd-socket-activate -l <socket> bun bench/activation-probe.ts

export const PROBE_BODY = "served-on-inherited-fd";

if (import.meta.main) {
  const server = Bun.serve({ fd: 3, fetch: () => new Response(PROBE_BODY) } as unknown as Parameters<typeof Bun.serve>[0]);
  process.stderr.write(`Bun.serve({ fd: 3 }) listens on ${server.url}\n`);
  process.on("SIGTERM", () => {
    server.stop(true);
    process.exit(0);
  });
}
