import type { Backend } from "../core/types.ts";
import type { ServeConfig } from "../config.ts";
import { PosixBackend } from "./posix/posix-backend.ts";

/** The backend a configuration names. */
export function createBackend(config: ServeConfig): Backend {
  switch (config.backend) {
    case "posix":
      return new PosixBackend({ root: config.path, scope: config.scope });
  }
}
