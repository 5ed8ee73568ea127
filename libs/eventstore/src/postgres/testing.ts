import { randomBytes } from "node:crypto";
import { type FreshDatabase, freshDatabase, sharedPostgres } from "@agentgate/testkit";
import { escapeIdentifier } from "pg";
import { createPostgresEventStore, type PostgresEventStore, type PostgresEventStoreOptions } from "./event-store.ts";
import { migrate } from "./migrate.ts";

/** A fresh database with a writer role for one test file; each schema() is a new, empty event store. */
export interface StoreDatabase {
  db: FreshDatabase;
  writerRole: string;
  /** Connects as the writer role. */
  writerUrl: string;
  /** Migrates a new schema and opens a store on it as the writer. */
  openStore(options?: Omit<PostgresEventStoreOptions, "connectionString" | "schema">): Promise<PostgresEventStore>;
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
  return {
    db,
    writerRole,
    writerUrl,
    async openStore(options = {}) {
      schemas += 1;
      const schema = `store_${schemas}`;
      await migrate(db.url, { schema, writerRole, writerPassword: password });
      return createPostgresEventStore({ ...options, connectionString: writerUrl, schema });
    },
    async drop() {
      await db.drop();
      await (await sharedPostgres()).query(`DROP ROLE IF EXISTS ${escapeIdentifier(writerRole)}`);
    },
  };
}
