import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { rmSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { escapeLiteral } from "pg";
import { findBinary, siblingBinary } from "./binaries.ts";
import { delay, fileSize, isRunning, lastLines, readFrom, runToCompletion, spawnLogged, stopChild } from "./child.ts";
import { type Resource, track } from "./cleanup.ts";
import { TestkitError } from "./errors.ts";
import { freePort } from "./ports.ts";
import { type PostgresClientOps, postgresClientOps, withClient } from "./postgres-client.ts";
import { chownToServerUser, spawnServer } from "./unprivileged.ts";

export type PostgresAuth = "scram-sha-256" | "md5" | "password" | "trust";

export interface PostgresOptions {
  /** pg_hba method for TCP connections; default scram-sha-256. Unix-socket connections are always trusted. */
  auth?: PostgresAuth;
  /** Extra `-c name=value` server settings; they win over the test kit's defaults. */
  settings?: Record<string, string>;
}

export interface PostgresInstance extends PostgresClientOps {
  readonly host: "127.0.0.1";
  readonly port: number;
  readonly user: "postgres";
  readonly password: string;
  readonly dataDir: string;
  readonly socketDir: string;
  /** server_version as the server reports it, e.g. "15.14 (Debian 15.14-0+deb12u1)". */
  readonly version: string;
  /** Fast shutdown (SIGINT), wait for exit, remove every directory; safe to call more than once. */
  stop(): Promise<void>;
  /** Fast shutdown and start again on the same port and data directory. */
  restart(): Promise<void>;
}

const INSTALL_HINT = "apt-get install -y postgresql";
const READY_TIMEOUT_MS = 30_000;
const PORT_ATTEMPTS = 3;

const DEFAULT_SETTINGS: Record<string, string> = {
  listen_addresses: "127.0.0.1",
  fsync: "off",
  synchronous_commit: "off",
  full_page_writes: "off",
  max_connections: "200",
};

/** Starts a throwaway PostgreSQL cluster on a free loopback port; everything lives in one fresh temp directory. */
export async function startPostgres(options: PostgresOptions = {}): Promise<PostgresInstance> {
  const auth = options.auth ?? "scram-sha-256";
  const initdb = findBinary("initdb", INSTALL_HINT);
  const postgres = siblingBinary(initdb, "postgres") ?? findBinary("postgres", INSTALL_HINT);

  const root = await mkdtemp(join(tmpdir(), "agentgate-pg-"));
  const resource: Resource = { child: undefined, dirs: [root] };
  const untrack = track(resource);
  const dataDir = join(root, "data");
  const logPath = join(root, "postgres.log");
  const password = randomBytes(18).toString("base64url");
  const settings = {
    ...DEFAULT_SETTINGS,
    unix_socket_directories: root,
    // The stored verifier decides what md5 auth can check: a SCRAM verifier makes the server use SCRAM anyway.
    password_encryption: auth === "md5" ? "md5" : "scram-sha-256",
    ...options.settings,
  };

  try {
    chownToServerUser(root);
    await initCluster(initdb, resource, dataDir, password, auth);

    let port = 0;
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      const offset = fileSize(logPath);
      resource.child = launch(postgres, dataDir, port, settings, logPath);
      if ((await waitUntilReady(resource.child, root, port, logPath, offset)) === "ready") break;
      if (attempt === PORT_ATTEMPTS) {
        throw new TestkitError("start_failed", `postgres lost the race for a free port ${PORT_ATTEMPTS} times`);
      }
    }

    // initdb stored a SCRAM verifier; md5 auth needs an md5 one.
    if (auth === "md5") {
      await withClient({ host: root, port, user: "postgres", database: "postgres" }, (client) =>
        client.query(`ALTER ROLE postgres PASSWORD ${escapeLiteral(password)}`),
      );
    }
    const coordinates = { host: "127.0.0.1", port, user: "postgres", password } as const;
    // Prove the advertised coordinates work over TCP with the password before handing them out.
    const [row] = await withClient({ ...coordinates, database: "postgres" }, (client) =>
      client.query<{ server_version: string }>("SHOW server_version"),
    ).then((result) => result.rows);

    let stopping: Promise<void> | undefined;
    const instance: PostgresInstance = {
      ...coordinates,
      ...postgresClientOps(coordinates),
      dataDir,
      socketDir: root,
      version: row?.server_version ?? "unknown",
      stop: () => {
        stopping ??= (async () => {
          if (resource.child !== undefined) await stopChild(resource.child, "SIGINT");
          await rm(root, { recursive: true, force: true, maxRetries: 3 });
          untrack();
        })();
        return stopping;
      },
      restart: async () => {
        if (stopping !== undefined) throw new TestkitError("stopped", "this PostgreSQL instance was stopped");
        if (resource.child !== undefined) await stopChild(resource.child, "SIGINT");
        const offset = fileSize(logPath);
        resource.child = launch(postgres, dataDir, port, settings, logPath);
        if ((await waitUntilReady(resource.child, root, port, logPath, offset)) === "port-taken") {
          throw new TestkitError("start_failed", `port ${port} was taken while postgres restarted`);
        }
      },
    };
    return instance;
  } catch (error) {
    if (resource.child !== undefined) await stopChild(resource.child, "SIGKILL");
    await rm(root, { recursive: true, force: true, maxRetries: 3 });
    untrack();
    throw error;
  }
}

async function initCluster(
  initdb: string,
  resource: Resource,
  dataDir: string,
  password: string,
  auth: PostgresAuth,
): Promise<void> {
  const root = dirname(dataDir);
  const pwfile = join(root, "pwfile");
  writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
  chownToServerUser(pwfile);
  const args = [
    `--pgdata=${dataDir}`,
    "--username=postgres",
    `--pwfile=${pwfile}`,
    "--auth-local=trust",
    `--auth-host=${auth}`,
    "--encoding=UTF8",
    "--locale=C",
    "--no-sync",
  ];
  try {
    // Tracked like the server, so an interrupt kills initdb before its directory is removed.
    resource.child = spawnServer(initdb, args, { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    await runToCompletion(resource.child, "initdb");
  } finally {
    rmSync(pwfile, { force: true });
  }
}

function launch(
  postgres: string,
  dataDir: string,
  port: number,
  settings: Record<string, string>,
  logPath: string,
): ChildProcess {
  const args = ["-D", dataDir, "-p", String(port)];
  for (const [name, value] of Object.entries(settings)) args.push("-c", `${name}=${value}`);
  return spawnLogged(postgres, args, logPath, { cwd: dataDir });
}

async function waitUntilReady(
  child: ChildProcess,
  socketDir: string,
  port: number,
  logPath: string,
  logOffset: number,
): Promise<"ready" | "port-taken"> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (!isRunning(child)) {
      const log = readFrom(logPath, logOffset);
      if (/Address already in use/i.test(log)) return "port-taken";
      throw new TestkitError("start_failed", `postgres exited during startup; log tail:\n${lastLines(log)}`);
    }
    if (await canConnect(socketDir, port)) return "ready";
    if (Date.now() > deadline) {
      await stopChild(child, "SIGKILL");
      throw new TestkitError(
        "start_timeout",
        `postgres did not accept connections within ${READY_TIMEOUT_MS} ms; log tail:\n${lastLines(readFrom(logPath, logOffset))}`,
      );
    }
    await delay(50);
  }
}

async function canConnect(socketDir: string, port: number): Promise<boolean> {
  try {
    await withClient({ host: socketDir, port, user: "postgres", database: "postgres" }, async () => {});
    return true;
  } catch {
    return false;
  }
}
