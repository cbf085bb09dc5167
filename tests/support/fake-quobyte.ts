/**
 * A faithful fake of the Quobyte management API (JSON-RPC 2.0 over HTTP) for tests.
 * Spec: /work/shared/reference/quobyte-api.md §2 (wire format) and §5 (fake server).
 *
 *   const fake = await startFakeQuobyte({ mountTree: dir });
 *   // point the client at fake.url with user "admin", password "s3cret-Pa55"
 *   fake.injectFault("createVolume", { kind: "drop" });
 *   ...
 *   await fake.stop();
 *
 * Implementation in ./fake-quobyte/: types.ts (public types), errors.ts (error texts,
 * codes, parameter normalisation), state.ts (tenants, volumes, quotas, methods),
 * mount-tree.ts (directories standing in for the client mount), server.ts (HTTP, auth,
 * cookies, envelope, faults, log).
 */
export type {
  FakeFault,
  FakeLabel,
  FakeMountTreeLayout,
  FakeQuobyte,
  FakeQuobyteOptions,
  FakeQuota,
  FakeRequestLog,
  FakeRole,
  FakeTenant,
  FakeUser,
  FakeVolume,
} from "./fake-quobyte/types.ts";
export { COOKIE_NAME, startFakeQuobyte } from "./fake-quobyte/server.ts";
export { DEFAULT_USER } from "./fake-quobyte/state.ts";
export { FAKE_ERROR_CODES, formatAppError, isUuidV4 } from "./fake-quobyte/errors.ts";
