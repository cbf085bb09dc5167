import { expect, test } from "bun:test";
import { renderServiceUnit, renderSocketUnit } from "../../../src/system/systemd-units.ts";

// The recommended install runs the service on its own socket: socket activation puts a
// splice in front of every request (bench/README.md, "Against Go"), so the service must
// not pull the .socket unit in. The .socket unit stays available for those who want it.

test("the service unit binds its own socket and does not require the .socket unit", () => {
  const unit = renderServiceUnit({ binary: "/usr/local/bin/docker-quobyte-plugin", backend: "posix", serveFlags: [["--group", "docker"]] });
  const directives = unit.split("\n").filter((line) => !line.startsWith("#"));
  expect(directives.filter((line) => line.includes("docker-quobyte-plugin.socket"))).toEqual([]);
  expect(directives).toContain("Before=docker.service");
  expect(directives.find((line) => line.startsWith("ExecStart="))).toContain("--group docker");
});

test("the optional .socket unit still listens where the engine looks", () => {
  const socket = renderSocketUnit({ socketPath: "/run/docker/plugins/quobyte.sock", group: "docker" });
  expect(socket.split("\n")).toContain("ListenStream=/run/docker/plugins/quobyte.sock");
  expect(socket.split("\n")).toContain("SocketGroup=docker");
});
