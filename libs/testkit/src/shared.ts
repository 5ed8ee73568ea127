import { escapeIdentifier } from "pg";
import { TestkitError } from "./errors.ts";
import { type NatsInstance, startNats } from "./nats.ts";
import { type PostgresInstance, startPostgres } from "./postgres.ts";
import { type PostgresCoordinates, postgresClientOps } from "./postgres-client.ts";

/** JSON `{ host, port, user, password, version?, dataDir?, socketDir? }` of a running PostgreSQL to share. */
export const TEST_PG_ENV = "AGENTGATE_TEST_PG";
/** URL of a running nats-server to share. */
export const TEST_NATS_ENV = "AGENTGATE_TEST_NATS";

let sharedPg: Promise<PostgresInstance> | undefined;
let sharedNatsServer: Promise<NatsInstance> | undefined;

/**
 * The PostgreSQL of this test run: the one described by AGENTGATE_TEST_PG, else one started lazily for this
 * process and killed at exit. Its stop() does nothing and restart() throws, as other tests use it too.
 */
export function sharedPostgres(): Promise<PostgresInstance> {
  sharedPg ??= openSharedPostgres().catch((error: unknown) => {
    sharedPg = undefined;
    throw error;
  });
  return sharedPg;
}

/** The nats-server of this test run: AGENTGATE_TEST_NATS, else one started lazily for this process. */
export function sharedNats(): Promise<NatsInstance> {
  sharedNatsServer ??= openSharedNats().catch((error: unknown) => {
    sharedNatsServer = undefined;
    throw error;
  });
  return sharedNatsServer;
}

export interface FreshDatabase {
  name: string;
  url: string;
  /** Drops the database, ending any session still connected to it. */
  drop(): Promise<void>;
}

/** A new, uniquely named database on the shared PostgreSQL; one per test file keeps files independent. */
export async function freshDatabase(): Promise<FreshDatabase> {
  const pg = await sharedPostgres();
  const name = await pg.createDatabase();
  return {
    name,
    url: pg.url(name),
    drop: async () => {
      await pg.query(`DROP DATABASE IF EXISTS ${escapeIdentifier(name)} WITH (FORCE)`);
    },
  };
}

/** The AGENTGATE_TEST_PG value that lets child processes share `pg`. */
export function postgresEnvValue(pg: PostgresInstance): string {
  const { host, port, user, password, version, dataDir, socketDir } = pg;
  return JSON.stringify({ host, port, user, password, version, dataDir, socketDir });
}

async function openSharedPostgres(): Promise<PostgresInstance> {
  const fromEnv = process.env[TEST_PG_ENV];
  const pg = fromEnv === undefined || fromEnv === "" ? await startPostgres() : await fromEnvironment(fromEnv);
  return {
    ...pg,
    stop: async () => {},
    restart: () => Promise.reject(notForShared("PostgreSQL", "restart", "startPostgres()")),
  };
}

async function fromEnvironment(value: string): Promise<PostgresInstance> {
  const described = parsePostgresEnv(value);
  const coordinates: PostgresCoordinates = described;
  const ops = postgresClientOps(coordinates);
  const version =
    described.version ?? (await ops.query<{ server_version: string }>("SHOW server_version"))[0]?.server_version;
  return {
    ...ops,
    host: "127.0.0.1",
    port: described.port,
    user: "postgres",
    password: described.password,
    dataDir: described.dataDir ?? "",
    socketDir: described.socketDir ?? "",
    version: version ?? "unknown",
    stop: async () => {},
    restart: () => Promise.reject(notForShared("PostgreSQL", "restart", "startPostgres()")),
  };
}

interface DescribedPostgres extends PostgresCoordinates {
  version?: string;
  dataDir?: string;
  socketDir?: string;
}

function parsePostgresEnv(value: string): DescribedPostgres {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (error) {
    throw new TestkitError("bad_environment", `${TEST_PG_ENV} is not JSON`, { cause: error });
  }
  const record = (typeof parsed === "object" && parsed !== null ? parsed : {}) as Record<string, unknown>;
  const { host, port, user, password } = record;
  if (host !== "127.0.0.1" || typeof port !== "number" || user !== "postgres" || typeof password !== "string") {
    throw new TestkitError(
      "bad_environment",
      `${TEST_PG_ENV} must be {"host":"127.0.0.1","port":<number>,"user":"postgres","password":<string>}`,
    );
  }
  const optional = (key: string) => (typeof record[key] === "string" ? (record[key] as string) : undefined);
  return {
    host,
    port,
    user,
    password,
    version: optional("version"),
    dataDir: optional("dataDir"),
    socketDir: optional("socketDir"),
  };
}

async function openSharedNats(): Promise<NatsInstance> {
  const url = process.env[TEST_NATS_ENV];
  const nats = url === undefined || url === "" ? await startNats() : fromUrl(url);
  return {
    ...nats,
    stop: async () => {},
    kill: () => Promise.reject(notForShared("nats-server", "kill", "startNats()")),
    start: () => Promise.reject(notForShared("nats-server", "start", "startNats()")),
  };
}

function fromUrl(url: string): NatsInstance {
  const port = Number(new URL(url).port);
  if (!Number.isInteger(port) || port <= 0) {
    throw new TestkitError("bad_environment", `${TEST_NATS_ENV} must be a nats://host:port URL, got ${url}`);
  }
  const unsupported = () => Promise.reject(notForShared("nats-server", "control", "startNats()"));
  return { url, port, storeDir: "", version: "unknown", stop: async () => {}, kill: unsupported, start: unsupported };
}

function notForShared(server: string, action: string, alternative: string): TestkitError {
  return new TestkitError(
    "unsupported",
    `cannot ${action} the shared ${server}: other tests use it; start a private one with ${alternative}`,
  );
}
