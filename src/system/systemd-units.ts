/** systemd unit files for the plugin. Pure: the install command writes them. */

export interface UnitOptions {
  /** Where the binary is installed (the final path, not a staging one). */
  binary: string;
  /** quobyte runs mount-all before serving; posix has nothing to mount. */
  backend: "posix" | "quobyte";
  /**
   * Flags `serve` runs with (absolute paths, already validated), in order: exactly what
   * the operator tested by hand. The storage ones are given to mount-all too.
   */
  serveFlags: [flag: string, value: string][];
}

export const SERVICE_NAME = "docker-quobyte-plugin.service";
export const SOCKET_NAME = "docker-quobyte-plugin.socket";

/** Flags mount-all shares with serve: it must check and mount the same storage. */
const MOUNT_ALL_FLAGS = new Set(["--env-file", "--path", "--mount-check", "--state-dir"]);

/**
 * One word of an Exec line: systemd splits on blanks, expands `$VAR` and `%` specifiers,
 * so such words are quoted and escaped.
 */
export function systemdWord(word: string): string {
  const escaped = word.replace(/%/g, "%%").replace(/\$/g, "$$$$");
  if (!/[\s"'\\;]/.test(escaped) && escaped !== "") return escaped;
  return `"${escaped.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

function execLine(binary: string, command: string, flags: [string, string][]): string {
  return [binary, command, ...flags.flat()].map(systemdWord).join(" ");
}

/**
 * The sandbox. What the plugin needs decides what is left out; each omission is written
 * into the unit with its reason, so nobody "fixes" it into a broken plugin.
 */
const HARDENING = [
  "# Sandbox (systemd-analyze security). Left out on purpose:",
  "#  ProtectSystem, ProtectHome, PrivateTmp, PrivateDevices, ProtectKernelTunables,",
  "#  ProtectKernelModules, ProtectKernelLogs, ProtectControlGroups, ProtectProc,",
  "#  ReadOnlyPaths, InaccessiblePaths, TemporaryFileSystem: each gives the service a",
  "#  private mount namespace, and the Quobyte FUSE mount made by mount-all must",
  "#  propagate to the host, where dockerd bind-mounts volumes from it.",
  "#  PrivateUsers: a user namespace drops the real CAP_SYS_ADMIN that mounting FUSE needs.",
  "#  MemoryDenyWriteExecute: Bun's JavaScript JIT needs writable+executable memory.",
  "#  PrivateNetwork, IPAddressDeny: the Quobyte API and registry are reached over the network.",
  "#  User=, DynamicUser: mounting and chown of volume roots to their owners need root.",
  "#  RestrictSUIDSGID: volume roots may be setgid (-o mode=2770), so files created in them",
  "#  keep the volume's group; the filter would refuse that chmod.",
  "NoNewPrivileges=yes",
  // SYS_ADMIN: mount/umount of the FUSE client. CHOWN/FOWNER/DAC_*: volume roots owned by
  // the volume's user. FSETID: without it the kernel silently drops S_ISGID from a chmod
  // of a root whose group is not ours (mode=2770). SETUID/SETGID: mount.quobyte drops to its own user.
  "CapabilityBoundingSet=CAP_SYS_ADMIN CAP_CHOWN CAP_FOWNER CAP_FSETID CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_SETUID CAP_SETGID",
  "AmbientCapabilities=",
  "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
  "RestrictNamespaces=yes",
  "LockPersonality=yes",
  "RestrictRealtime=yes",
  "SystemCallArchitectures=native",
  "SystemCallFilter=@system-service @mount",
  "SystemCallFilter=~@clock @cpu-emulation @debug @module @obsolete @raw-io @reboot @swap",
  "SystemCallErrorNumber=EPERM",
  "UMask=0077",
  "DevicePolicy=closed",
  "DeviceAllow=/dev/fuse rw",
  "ProtectClock=yes",
  "ProtectHostname=yes",
  "KeyringMode=private",
  "RemoveIPC=yes",
];

/**
 * Ordered before docker.service so the engine finds the socket at start (it would
 * otherwise wait 15 s per volume and hide them), after the network the API needs.
 */
export function renderServiceUnit(options: UnitOptions): string {
  const serveFlags: [string, string][] = [["--backend", options.backend], ...options.serveFlags];
  const lines = [
    "[Unit]",
    "Description=Docker volume plugin for Quobyte-style shared storage",
    "Documentation=https://docs.docker.com/engine/extend/plugins_volume/",
    "Before=docker.service",
    "After=network-online.target",
    "Wants=network-online.target",
    // The service binds the plugin socket itself. docker-quobyte-plugin.socket is optional:
    // behind it every connection goes through a splice into a private socket (Bun.serve
    // cannot adopt an inherited descriptor), which measured 0.72-0.79x the direct socket's
    // throughput (bench/README.md); the engine retries a missing socket for 30 s.
    "",
    "[Service]",
    "Type=simple",
    // Not EnvironmentFile=: systemd skips a malformed line with a journal warning, and a
    // skipped QUOBYTE_API_URL would leave the plugin without its API.
    "# The env file is read by serve itself (--env-file, or the default one), strictly.",
  ];
  if (options.backend === "quobyte") {
    lines.push(`ExecStartPre=${execLine(options.binary, "mount-all", serveFlags.filter(([flag]) => flag === "--backend" || MOUNT_ALL_FLAGS.has(flag)))}`);
  }
  lines.push(
    `ExecStart=${execLine(options.binary, "serve", [...serveFlags, ["--log-format", "json"]])}`,
    "Restart=on-failure",
    "RestartSec=2",
    "LimitNOFILE=16384",
    ...HARDENING,
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
