/**
 * TEST ONLY. `DOCKER_QUOBYTE_PLUGIN_TEST_CRASH_AT=<point>` makes the process SIGKILL itself
 * the first time it reaches `crashPoint(<point>)`, so the kill-injection suites can stop
 * it between two steps of one operation on purpose (a random kill rarely lands there).
 * Never set it in production: unset, a crash point is one string comparison.
 */
export const CRASH_AT_ENV = "DOCKER_QUOBYTE_PLUGIN_TEST_CRASH_AT";

const armed = process.env[CRASH_AT_ENV];

/** The named steps a test may crash at; one list, so a typo is a type error. */
export type CrashPoint =
  | "metadata:staged"
  | "posix-remove:marked"
  | "posix-remove:trashed"
  | "quobyte-remove:decided"
  | "quobyte-remove:deleted"
  | "claims-remove:marked"
  | "claims-mount:claimed";

export function crashPoint(point: CrashPoint): void {
  if (armed === point) process.kill(process.pid, "SIGKILL");
}
