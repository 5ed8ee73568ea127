import { Client, escapeIdentifier, escapeLiteral } from "pg";
import { EventStoreError } from "../errors.ts";
import { DEFAULT_SCHEMA, requireIdentifier, storeNames } from "./names.ts";
import { grantsSql, schemaSql } from "./schema-sql.ts";
import { storageError } from "./storage-error.ts";

export interface MigrateOptions {
  /** Default "eventstore". */
  schema?: string;
  /** The role appenders connect as; created when missing; gets USAGE on the schema and INSERT, SELECT on events. */
  writerRole: string;
  /** When given, the writer role can log in with it (LOGIN PASSWORD); otherwise a missing role is NOLOGIN. */
  writerPassword?: string;
}

/**
 * Creates (or brings up to date) the event store schema as an administrator, who owns it: the events table, the
 * append-only and chain-link triggers, the append notification, and the writer role's grants.
 */
export async function migrate(adminConnectionString: string, options: MigrateOptions): Promise<void> {
  const names = storeNames(options.schema ?? DEFAULT_SCHEMA);
  requireIdentifier(options.writerRole, "writerRole");
  const client = new Client({
    connectionString: adminConnectionString,
    application_name: "agentgate-eventstore-migrate",
  });
  client.on("error", () => {});
  try {
    await client.connect();
    await ensureWriterRole(client, options.writerRole, options.writerPassword);
    await client.query("BEGIN");
    await client.query(`SELECT pg_advisory_xact_lock(${names.lockKey})`);
    await client.query(schemaSql(names));
    await client.query(grantsSql(names, options.writerRole));
    await client.query("COMMIT");
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    if (error instanceof EventStoreError) throw error;
    throw storageError(`migrating schema ${names.schema}`, error);
  } finally {
    await client.end().catch(() => {});
  }
}

async function ensureWriterRole(client: Client, role: string, password: string | undefined): Promise<void> {
  const quoted = escapeIdentifier(role);
  const login = password === undefined ? "NOLOGIN" : `LOGIN PASSWORD ${escapeLiteral(password)}`;
  const { rows } = await client.query<{ rolsuper: boolean; is_me: boolean }>(
    "SELECT rolsuper, rolname = current_user AS is_me FROM pg_roles WHERE rolname = $1",
    [role],
  );
  const existing = rows[0];
  if (existing?.rolsuper || existing?.is_me) {
    throw new EventStoreError(
      "invalid_argument",
      `writerRole ${role} must be an ordinary role, not a superuser or the migrating owner: it may only insert`,
    );
  }
  if (existing === undefined) {
    try {
      await client.query(`CREATE ROLE ${quoted} ${login}`);
      return;
    } catch (error) {
      // Another migration created it meanwhile; roles are cluster-wide.
      if ((error as { code?: string }).code !== "42710") throw error;
    }
  }
  if (password !== undefined) await client.query(`ALTER ROLE ${quoted} ${login}`);
}
