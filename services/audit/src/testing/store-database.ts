import {
  type StoreDatabase as BaseStoreDatabase,
  storeDatabase as baseStoreDatabase,
} from "@agentgate/eventstore/testing";
import pg, { escapeIdentifier } from "pg";

/** The event store's test database plus what the audit tests need: admin statements, and the store going away. */
export interface StoreDatabase extends BaseStoreDatabase {
  /** Runs one statement as the administrator. */
  admin<R extends pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<R[]>;
  /** The store as its writer can no longer reach it: logins refused, open connections ended. */
  takeStoreDown(): Promise<void>;
  bringStoreUp(): Promise<void>;
}

export async function storeDatabase(): Promise<StoreDatabase> {
  const base = await baseStoreDatabase();
  const admin = async <R extends pg.QueryResultRow>(sql: string, params: unknown[] = []) => {
    const client = new pg.Client({ connectionString: base.db.url });
    await client.connect();
    try {
      return (await client.query<R>(sql, params)).rows;
    } finally {
      await client.end();
    }
  };
  const role = escapeIdentifier(base.writerRole);
  return {
    ...base,
    admin,
    async takeStoreDown() {
      await admin(`ALTER ROLE ${role} NOLOGIN`);
      await admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", [base.writerRole]);
    },
    async bringStoreUp() {
      await admin(`ALTER ROLE ${role} LOGIN`);
    },
  };
}
