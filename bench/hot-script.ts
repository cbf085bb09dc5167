import { engineRequest } from "./client.ts";
import type { Script } from "./load.ts";

/** The hot path's script, shared by the hot and probe workloads, and the crud cycle's (run and profile). */

export const hex = (bytes: number): string =>
  Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0")).join("");

/** Container start/stop: Get, Mount, Unmount of the connection's own volume. */
export function hotScript(connection: number): Script {
  const name = `hot-${connection}`;
  const requests: Uint8Array[] = [];
  const labels: number[] = [];
  for (let k = 0; k < 16; k++) {
    const id = hex(32);
    requests.push(engineRequest("VolumeDriver.Get", { Name: name }));
    requests.push(engineRequest("VolumeDriver.Mount", { Name: name, ID: id }));
    requests.push(engineRequest("VolumeDriver.Unmount", { Name: name, ID: id }));
    labels.push(0, 1, 2);
  }
  return { requests, labels };
}
export const HOT_LABELS = ["Get", "Mount", "Unmount"];

export const CRUD_LABELS = ["Create", "Get", "Mount", "Path", "Unmount", "Remove"];
/** A volume's whole life: Create, Get, Mount, Path, Unmount, Remove of the connection's own name. */
export function crudScript(connection: number): Script {
  const name = `crud-${connection}`;
  const id = hex(32);
  return {
    requests: [
      engineRequest("VolumeDriver.Create", { Name: name, Opts: {} }),
      engineRequest("VolumeDriver.Get", { Name: name }),
      engineRequest("VolumeDriver.Mount", { Name: name, ID: id }),
      engineRequest("VolumeDriver.Path", { Name: name }),
      engineRequest("VolumeDriver.Unmount", { Name: name, ID: id }),
      engineRequest("VolumeDriver.Remove", { Name: name }),
    ],
    labels: [0, 1, 2, 3, 4, 5],
  };
}
