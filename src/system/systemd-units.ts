/** systemd unit files for the plugin. Pure: the install command writes them. */

export interface UnitOptions {
  /** Where the binary is installed (the final path, not a staging one). */
  binary: string;
  /** quobyte runs mount-all before serving; posix has nothing to mount. */
  backend: "posix" | "quobyte";
  envFile: string;
}

export const SERVICE_NAME = "docker-quobyte-plugin.service";
export const SOCKET_NAME = "docker-quobyte-plugin.socket";

/**
 * Ordered before docker.service so the engine finds the socket at start (it would
 * otherwise wait 15 s per volume and hide them), after the network the API needs.
 * The env file is optional (`-`): the posix backend needs none.
 */
export function renderServiceUnit(options: UnitOptions): string {
  const lines = [
    "[Unit]",
    "Description=Docker volume plugin for Quobyte-style shared storage",
    "Documentation=https://docs.docker.com/engine/extend/plugins_volume/",
    "Before=docker.service",
    "After=network-online.target",
    "Wants=network-online.target",
    // systemd listens on the plugin socket from early boot; Docker never finds it missing.
    `Requires=${SOCKET_NAME}`,
    `After=${SOCKET_NAME}`,
    "",
    "[Service]",
    "Type=simple",
    `EnvironmentFile=-${options.envFile}`,
  ];
  if (options.backend === "quobyte") lines.push(`ExecStartPre=${options.binary} mount-all --backend quobyte`);
  lines.push(
    `ExecStart=${options.binary} serve --backend ${options.backend} --log-format json`,
    "Restart=on-failure",
    "RestartSec=2",
    "LimitNOFILE=16384",
    "",
    "[Install]",
    // Wanted, not required, by docker: a broken plugin must not keep Docker down.
    "WantedBy=multi-user.target docker.service",
    "",
  );
  return lines.join("\n");
}

/** The socket systemd listens on for the service (socket activation). */
export function renderSocketUnit(options: { socketPath: string; group: string }): string {
  return [
    "[Unit]",
    "Description=Socket of the Docker volume plugin for Quobyte-style shared storage",
    "Before=docker.service",
    "",
    "[Socket]",
    `ListenStream=${options.socketPath}`,
    "SocketMode=0660",
    `SocketGroup=${options.group}`,
    "DirectoryMode=0755",
    "",
    "[Install]",
    "WantedBy=sockets.target",
    "",
  ].join("\n");
}
