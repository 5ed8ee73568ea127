import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { chownToServerUser, freePort, spawnServer, waitForPort } from "@agentgate/testkit";
import { makeTempDir, type Server, stopChild, tail } from "./processes.ts";

export const pgbouncerHint =
  "install PgBouncer: apt-get install -y pgbouncer (Debian/Ubuntu) or brew install pgbouncer";

export interface PgbouncerOptions {
  /** Path of the pgbouncer binary. */
  binary: string;
  /** The PostgreSQL server and database to pool; clients use the same database name. */
  upstream: { host: string; port: number; user: string; password: string; dbname: string };
  /** Enough server connections for every benchmark client. */
  poolSize: number;
}

function quote(value: string): string {
  return `"${value.replaceAll('"', '""')}"`;
}

/** pgbouncer.ini: session pooling on a loopback port, SCRAM for clients, the plain password to log in upstream. */
export function pgbouncerIni(options: PgbouncerOptions, dir: string, port: number): string {
  const { upstream } = options;
  return [
    "[databases]",
    `${upstream.dbname} = host=${upstream.host} port=${upstream.port} dbname=${upstream.dbname} user=${upstream.user}`,
    "",
    "[pgbouncer]",
    "listen_addr = 127.0.0.1",
    `listen_port = ${port}`,
    // An empty unix_socket_dir disables the socket, which would otherwise go to /var/run/postgresql.
    "unix_socket_dir =",
    "auth_type = scram-sha-256",
    `auth_file = ${join(dir, "userlist.txt")}`,
    "pool_mode = session",
    `max_client_conn = ${options.poolSize * 4}`,
    `default_pool_size = ${options.poolSize}`,
    `logfile = ${join(dir, "pgbouncer.log")}`,
    `pidfile = ${join(dir, "pgbouncer.pid")}`,
    "log_connections = 0",
    "log_disconnections = 0",
    "",
  ].join("\n");
}

/** Starts PgBouncer as the unprivileged server user in a temp dir that `stop()` removes. */
export async function startPgbouncer(options: PgbouncerOptions): Promise<Server> {
  const { path: dir, remove: cleanup } = makeTempDir("agentgate-pgbouncer-");
  try {
    const port = await freePort();
    const iniPath = join(dir, "pgbouncer.ini");
    const userlistPath = join(dir, "userlist.txt");
    writeFileSync(iniPath, pgbouncerIni(options, dir, port));
    writeFileSync(userlistPath, `${quote(options.upstream.user)} ${quote(options.upstream.password)}\n`, {
      mode: 0o600,
    });
    // PgBouncer refuses to run as root; as the server user it must read its files and write its log and pidfile.
    chownToServerUser(dir, iniPath, userlistPath);
    const child = spawnServer(options.binary, [iniPath], { stdio: "ignore" });
    try {
      await waitForPort(port, child, "pgbouncer");
    } catch (error) {
      await stopChild(child);
      throw new Error(`pgbouncer did not start; log:\n${tail(join(dir, "pgbouncer.log"))}`, { cause: error });
    }
    // The pidfile names pgbouncer itself, whatever wrapper spawnServer may put in front of it.
    const pidFile = join(dir, "pgbouncer.pid");
    const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8").trim()) : (child.pid ?? 0);
    return {
      host: "127.0.0.1",
      port,
      pid,
      stop: async () => {
        await stopChild(child);
        cleanup();
      },
    };
  } catch (error) {
    cleanup();
    throw error;
  }
}
