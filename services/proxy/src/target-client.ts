import type { ConnectionOptions } from "node:tls";
import type { Target } from "@agentgate/config";
import pg from "pg";

/**
 * A node-postgres client on a target with the gateway's own credential, for what the gateway asks the database
 * itself (catalogs, row estimates). `options` are server settings for the connection (`-c name=value ...`).
 */
export function targetClient(
  target: Target,
  tls: ConnectionOptions | undefined,
  applicationName: string,
  extra: { options?: string; connectionTimeoutMillis?: number } = {},
): pg.Client {
  return new pg.Client({
    host: target.host,
    port: target.port,
    user: target.user,
    password: target.password,
    database: target.database,
    ssl: tls ?? false,
    application_name: applicationName,
    ...extra,
  });
}
