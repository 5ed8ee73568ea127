import { randomBytes } from "node:crypto";
import { Client, type ClientConfig, escapeIdentifier, type QueryResultRow } from "pg";

/** Where a PostgreSQL superuser can log in over TCP. */
export interface PostgresCoordinates {
  host: string;
  port: number;
  user: string;
  password: string;
}

/** What every PostgreSQL handle offers, whether the test kit started the server or found it in the environment. */
export interface PostgresClientOps {
  /** A postgresql:// URL for the superuser; database defaults to "postgres". */
  url(database?: string): string;
  /** Creates a fresh, uniquely named database (unless `name` is given) and returns its name. */
  createDatabase(name?: string): Promise<string>;
  /** Runs one statement on a short-lived connection and returns its rows. */
  query<R extends QueryResultRow = QueryResultRow>(sql: string, params?: unknown[], database?: string): Promise<R[]>;
}

export function postgresClientOps(coordinates: PostgresCoordinates): PostgresClientOps {
  const config = (database: string): ClientConfig => ({ ...coordinates, database });

  const query = async <R extends QueryResultRow = QueryResultRow>(
    sql: string,
    params?: unknown[],
    database = "postgres",
  ): Promise<R[]> => (await withClient(config(database), (client) => client.query<R>(sql, params))).rows;

  return {
    url: (database = "postgres") =>
      `postgresql://${encodeURIComponent(coordinates.user)}:${encodeURIComponent(coordinates.password)}` +
      `@${coordinates.host}:${coordinates.port}/${encodeURIComponent(database)}`,
    createDatabase: async (name = uniqueDatabaseName()) => {
      await query(`CREATE DATABASE ${escapeIdentifier(name)}`);
      return name;
    },
    query,
  };
}

/** Connects, runs `use`, and always closes the connection. */
export async function withClient<T>(config: ClientConfig, use: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionTimeoutMillis: 5_000, ...config });
  // A server shutting down ends idle connections; without a listener that would crash the process.
  client.on("error", () => {});
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end().catch(() => {});
  }
}

export function uniqueDatabaseName(): string {
  return `test_${randomBytes(6).toString("hex")}`;
}
