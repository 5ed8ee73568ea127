import { randomBytes } from "node:crypto";
import {
  createPostgresEventStore,
  migrate,
  type PostgresEventStore,
  type PostgresEventStoreOptions,
} from "@agentgate/eventstore";
import { type FreshDatabase, freshDatabase, sharedPostgres } from "@agentgate/testkit";
import pg, { escapeIdentifier } from "pg";

/** A fresh database with an event store writer role for one test file; each openStore() migrates a new schema. */
export interface StoreDatabase {
  db: FreshDatabase;
  writerRole: string;
  writerUrl: string;
  openStore(options?: Omit<PostgresEventStoreOptions, "connectionString" | "schema">): Promise<PostgresEventStore>;
  /** Runs one statement as the administrator. */
  admin<R extends pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<R[]>;
  /** The store as its writer can no longer reach it: logins refused, open connections ended. */
  takeStoreDown(): Promise<void>;
  bringStoreUp(): Promise<void>;
  drop(): Promise<void>;
}

export async function storeDatabase(): Promise<StoreDatabase> {
  const db = await freshDatabase();
  const writerRole = `${db.name}_writer`;
  const password = randomBytes(12).toString("hex");
  const url = new URL(db.url);
  url.username = writerRole;
  url.password = password;
  const writerUrl = url.toString();
  let schemas = 0;
  const admin = async <R extends pg.QueryResultRow>(sql: string, params: unknown[] = []) => {
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      return (await client.query<R>(sql, params)).rows;
    } finally {
      await client.end();
    }
  };
  const role = escapeIdentifier(writerRole);
  return {
    db,
    writerRole,
    writerUrl,
    admin,
    async openStore(options = {}) {
      schemas += 1;
      const schema = `store_${schemas}`;
      await migrate(db.url, { schema, writerRole, writerPassword: password });
      return createPostgresEventStore({ ...options, connectionString: writerUrl, schema });
    },
    async takeStoreDown() {
      await admin(`ALTER ROLE ${role} NOLOGIN`);
      await admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", [writerRole]);
    },
    async bringStoreUp() {
      await admin(`ALTER ROLE ${role} LOGIN`);
    },
    async drop() {
      await db.drop();
      await (await sharedPostgres()).query(`DROP ROLE IF EXISTS ${role}`);
    },
  };
}
