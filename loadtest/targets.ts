import { existsSync } from "node:fs";
import { gatewayEntry, gatewayTarget, startGateway } from "./gateway.ts";
import type { TargetName } from "./options.ts";
import type { Endpoint } from "./pgbench.ts";
import { startPgbouncer } from "./pgbouncer.ts";
import type { Server } from "./processes.ts";
import { startPipe } from "./start-pipe.ts";

/** How pgbench reaches one target, and the process whose CPU is charged to it. */
export interface Target {
  name: TargetName;
  endpoint: Endpoint;
  pid?: number;
}

export interface StartTargetsOptions {
  names: TargetName[];
  /** PostgreSQL itself, with the database pgbench -i filled. */
  direct: Endpoint & { password: string };
  /** The same, as a URL for the gateway's configuration. */
  directUrl: string;
  /** Path of the pgbouncer binary; required when names include "pgbouncer". */
  pgbouncer?: string;
  maxClients: number;
  /** Called for each server as soon as it runs, so it is stopped even if a later one fails to start. */
  onStarted(name: TargetName, server: Server): void;
  /** Called with a line for the report, e.g. when the gateway is skipped. */
  onNote(note: string): void;
}

function startServer(name: Exclude<TargetName, "direct">, options: StartTargetsOptions): Promise<Server> {
  switch (name) {
    case "gateway":
      return startGateway(options.directUrl);
    case "pgbouncer":
      if (options.pgbouncer === undefined) throw new Error("pgbouncer target without a pgbouncer binary");
      return startPgbouncer({ binary: options.pgbouncer, upstream: options.direct, poolSize: options.maxClients });
    case "pipe":
      return startPipe(options.direct);
  }
}

/** Starts every requested proxy on its own loopback port; direct is always first. */
export async function startTargets(options: StartTargetsOptions): Promise<Target[]> {
  const targets: Target[] = [{ name: "direct", endpoint: options.direct }];
  for (const name of options.names) {
    if (name === "direct") continue;
    if (name === "gateway" && !existsSync(gatewayEntry)) {
      options.onNote(`gateway skipped: ${gatewayEntry} does not exist yet`);
      continue;
    }
    const server = await startServer(name, options);
    options.onStarted(name, server);
    // The gateway holds the database credential itself; pgbench brings none and may use any user name.
    const endpoint =
      name === "gateway"
        ? { host: server.host, port: server.port, user: "loadtest", dbname: gatewayTarget }
        : { ...options.direct, host: server.host, port: server.port };
    targets.push({ name, endpoint, pid: server.pid });
  }
  return targets;
}
