// N plugin instances (the compiled binary) on one fake Quobyte API and one shared mount
// tree, as N hosts would run them: each its own --host-id, state directory and socket,
// and its own API URL path, so the fake counts every host's calls apart.

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DEFAULT_USER, type FakeQuobyte, startFakeQuobyte } from "../../tests/support/fake-quobyte.ts";
import { Connection, engineRequest, isSuccess, type Reply } from "../client.ts";
import { pluginBinary, procStatusKb, type Served, serve, stop } from "../procs.ts";

export interface ClusterOptions {
  dir: string;
  instances: number;
  cacheTtlSeconds: number;
  /** Instances started at once (the machine has few cores). */
  startConcurrency: number;
}

export class Host {
  served: Served | undefined;
  /** Requests answered with an Err (an overloaded machine: storage checks time out), by code. */
  readonly errors = new Map<string, number>();
  private connection: Connection | undefined;

  constructor(
    readonly index: number,
    readonly id: string,
    readonly state: string,
    readonly socket: string,
    readonly logPath: string,
    /** The URL path this host's API calls arrive on. */
    readonly apiPath: string,
  ) {}

  /**
   * One engine-shaped call on this host's kept-open connection. An Err is counted, not
   * thrown: the run goes on and the report says how many requests failed, and why.
   */
  async call(method: string, body?: unknown): Promise<Reply> {
    this.connection ??= await Connection.open(this.socket);
    const reply = await this.connection.send(engineRequest(method, body));
    if (!isSuccess(reply)) {
      const code = /\[([A-Z_]+)\]"/.exec(reply.body.toString())?.[1] ?? `HTTP ${reply.status}`;
      const key = `${method.replace("VolumeDriver.", "")} ${code}`;
      this.errors.set(key, (this.errors.get(key) ?? 0) + 1);
    }
    return reply;
  }

  disconnect(): void {
    this.connection?.close();
    this.connection = undefined;
  }

  rssMb(): number {
    if (!this.served) throw new Error(`${this.id} is not running`);
    return procStatusKb(this.served.pid, "VmRSS") / 1024;
  }
}

export class Cluster {
  readonly hosts: Host[] = [];
  readonly tree: string;

  private constructor(
    readonly fake: FakeQuobyte,
    private readonly options: ClusterOptions,
  ) {
    this.tree = join(options.dir, "mnt");
    for (let i = 0; i < options.instances; i++) {
      const id = `host-${String(i).padStart(3, "0")}`;
      const state = join(options.dir, id);
      mkdirSync(state, { recursive: true });
      this.hosts.push(new Host(i, id, state, join(options.dir, `${id}.sock`), join(options.dir, `${id}.log`), `/${id}`));
    }
  }

  static async start(options: ClusterOptions): Promise<Cluster> {
    mkdirSync(join(options.dir, "mnt"), { recursive: true });
    // The fake's test password, in a file as an operator keeps it (never in argv).
    writeFileSync(join(options.dir, "api-password"), DEFAULT_USER.password, { mode: 0o600 });
    const fake = await startFakeQuobyte({ mountTree: join(options.dir, "mnt"), logRequests: false });
    const cluster = new Cluster(fake, options);
    try {
      await cluster.startAll();
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  private argv(host: Host): string[] {
    return [
      pluginBinary(),
      "serve",
      "--backend",
      "quobyte",
      "--api",
      new URL(host.apiPath, this.fake.url).href,
      "--tenant-id",
      "My Tenant",
      "--path",
      this.tree,
      "--state-dir",
      host.state,
      "--socket",
      host.socket,
      "--mount-check",
      "none",
      "--cache-ttl",
      String(this.options.cacheTtlSeconds),
      "--password-file",
      join(this.options.dir, "api-password"),
      "--log-level",
      "warn",
    ];
  }

  /**
   * Starts every host (a few at a time); `serving` runs for each as soon as it serves (its
   * engine's first requests). Returns each host's milliseconds to serving.
   */
  async startAll(serving?: (host: Host) => Promise<void>): Promise<number[]> {
    const times: number[] = [];
    const queue = [...this.hosts];
    const worker = async () => {
      for (let host = queue.shift(); host; host = queue.shift()) {
        host.served = await serve(this.argv(host), host.socket, host.logPath, 60_000);
        times.push(host.served.readyMs);
        await serving?.(host);
      }
    };
    await Promise.all(Array.from({ length: this.options.startConcurrency }, worker));
    return times;
  }

  /** SIGTERM to every host at once, as a cluster-wide restart does. */
  async stopAll(): Promise<void> {
    await Promise.all(
      this.hosts.map(async (host) => {
        host.disconnect();
        if (host.served) await stop(host.served.proc);
        host.served = undefined;
      }),
    );
  }

  async stop(): Promise<void> {
    await this.stopAll();
    await this.fake.stop();
  }
}
