import { existsSync } from "node:fs";
import { fullPrincipals, fullTarget, touchedMask, untouchedMask } from "./full-config.ts";
import { gatewayEntry, gatewayTarget, startGateway } from "./gateway.ts";
import { type FullStack, type FullStackOptions, startGatewayFull } from "./gateway-full.ts";
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
  /**
   * gateway-full and gateway-full-exempt: the stack (shared by both) whose processes are charged to the run and
   * whose audit is checked after it, and the principal pgbench signs in as with a fresh token for each run.
   */
  full?: { stack: FullStack; clientId: string };
}

type FullTargetName = Extract<TargetName, "gateway-full" | "gateway-full-exempt">;

/** The principal each full-stack target signs in as: subject to the mask on pgbench_accounts, or exempt from it. */
const fullClients: Record<FullTargetName, string> = {
  "gateway-full": fullPrincipals.masked.clientId,
  "gateway-full-exempt": fullPrincipals.exempt.clientId,
};

function isFullTarget(name: TargetName): name is FullTargetName {
  return Object.hasOwn(fullClients, name);
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
  /** What gateway-full needs besides: the benchmark server, token lifetime, a log line sink. */
  full: Omit<FullStackOptions, "dbname">;
}

function startServer(
  name: Exclude<TargetName, "direct" | FullTargetName>,
  options: StartTargetsOptions,
): Promise<Server> {
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
  let stack: FullStack | undefined;
  for (const name of options.names) {
    if (name === "direct") continue;
    if (name.startsWith("gateway") && !existsSync(gatewayEntry)) {
      options.onNote(`${name} skipped: ${gatewayEntry} does not exist yet`);
      continue;
    }
    if (isFullTarget(name)) {
      const clientId = fullClients[name];
      if (stack === undefined) {
        stack = await startGatewayFull({ ...options.full, dbname: options.direct.dbname });
        const started = stack;
        options.onNote(
          `gateway-full: identity (OIDC token as password, plaintext on loopback), policy service, write-ahead audit ` +
            `(NATS JetStream) with its ingester into an event store on a second PostgreSQL, masks ${untouchedMask} ` +
            `(never read) and ${touchedMask} (on the table pgbench reads; gateway-full-exempt's principal is exempt)`,
        );
        options.onStarted(name, {
          host: started.host,
          port: started.port,
          pid: started.pids.proxy,
          stop: started.stop,
        });
      }
      // The password is the token, fetched before each run (tokens expire).
      const endpoint = { host: stack.host, port: stack.port, user: clientId, dbname: fullTarget };
      targets.push({ name, endpoint, pid: stack.pids.proxy, full: { stack, clientId } });
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
