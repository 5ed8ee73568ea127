import { createHash } from "node:crypto";
import type pg from "pg";
import { escapeIdentifier } from "pg";

/** Where the read models live unless configured otherwise. */
export const DEFAULT_READ_SCHEMA = "agentgate_read";
/** The name of the read models' row in projection_checkpoints. */
export const READ_MODEL_PROJECTION = "audit-read-model";

export interface ReadModelNames {
  schema: string;
  sessions: string;
  statements: string;
  approvals: string;
  workers: string;
  checkpoints: string;
  /** Serialises migrations and rebuilds of this schema. */
  lockKey: bigint;
}

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

export function readModelNames(schema: string = DEFAULT_READ_SCHEMA): ReadModelNames {
  if (!IDENTIFIER.test(schema)) {
    throw new RangeError(`the read model schema must be a lowercase identifier ([a-z_][a-z0-9_]*), got ${schema}`);
  }
  const q = escapeIdentifier(schema);
  return {
    schema,
    sessions: `${q}.sessions`,
    statements: `${q}.statements`,
    approvals: `${q}.approvals`,
    workers: `${q}.workers`,
    checkpoints: `${q}.projection_checkpoints`,
    lockKey: createHash("sha256").update(`agentgate.read:${schema}`).digest().readBigInt64BE(0),
  };
}

function tablesSql(n: ReadModelNames): string {
  return `
    CREATE TABLE IF NOT EXISTS ${n.sessions} (
      session_id        text PRIMARY KEY,
      principal_subject text,
      principal_groups  text[] NOT NULL DEFAULT '{}',
      principal_issuer  text,
      client_id         text,
      target            text,
      worker_id         text,
      client_address    text,
      application_name  text,
      tls               boolean,
      started_at        timestamptz,
      ended_at          timestamptz,
      end_reason        text,
      end_detail        text,
      statement_count   integer NOT NULL DEFAULT 0,
      last_position     bigint NOT NULL
    );
    CREATE INDEX IF NOT EXISTS sessions_started_at ON ${n.sessions} (started_at DESC);
    CREATE INDEX IF NOT EXISTS sessions_principal ON ${n.sessions} (principal_subject, started_at DESC);
    CREATE INDEX IF NOT EXISTS sessions_target ON ${n.sessions} (target, started_at DESC);
    CREATE TABLE IF NOT EXISTS ${n.statements} (
      session_id      text NOT NULL,
      statement_id    text NOT NULL,
      sequence        bigint,
      received_at     timestamptz,
      sql             text,
      parameters      text[] NOT NULL DEFAULT '{}',
      protocol        text,
      fingerprint     text,
      classes         text[] NOT NULL DEFAULT '{}',
      effect          text,
      rule            text,
      reason          text,
      policy_revision text,
      status          text,
      command_tag     text,
      rows            bigint,
      duration_micros bigint,
      sqlstate        text,
      masked_cells    jsonb,
      completed_at    timestamptz,
      PRIMARY KEY (session_id, statement_id)
    );
    CREATE INDEX IF NOT EXISTS statements_session_sequence ON ${n.statements} (session_id, sequence);
    CREATE TABLE IF NOT EXISTS ${n.approvals} (
      approval_id        text PRIMARY KEY,
      session_id         text NOT NULL,
      requester          text,
      target             text,
      requested_at       timestamptz,
      sql                text,
      rule               text,
      reason             text,
      estimated_rows     bigint,
      objects            text[] NOT NULL DEFAULT '{}',
      approver_groups    text[] NOT NULL DEFAULT '{}',
      approvals_required integer,
      mode               text,
      state              text NOT NULL,
      decisions          jsonb NOT NULL DEFAULT '[]',
      expires_at         timestamptz,
      decided_at         timestamptz,
      ended_reason       text
    );
    CREATE INDEX IF NOT EXISTS approvals_session ON ${n.approvals} (session_id, requested_at);
    CREATE TABLE IF NOT EXISTS ${n.workers} (
      worker_id      text PRIMARY KEY,
      last_heartbeat timestamptz NOT NULL,
      interval_ms    integer NOT NULL,
      open_sessions  integer NOT NULL DEFAULT 0,
      started_at     timestamptz
    );
    CREATE INDEX IF NOT EXISTS sessions_open_by_worker ON ${n.sessions} (worker_id) WHERE ended_at IS NULL;
  `;
}

/** Creates the schema, the read model tables and the checkpoint row (at 0) when missing. */
export async function migrateReadModel(client: pg.ClientBase, n: ReadModelNames): Promise<void> {
  await inLockedTransaction(client, n, async () => {
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${escapeIdentifier(n.schema)}`);
    await client.query(`
      CREATE TABLE IF NOT EXISTS ${n.checkpoints} (
        name       text PRIMARY KEY,
        position   bigint NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await client.query(tablesSql(n));
    await client.query(`INSERT INTO ${n.checkpoints} (name, position) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING`, [
      READ_MODEL_PROJECTION,
    ]);
  });
}

/** Drops the read models and sets their checkpoint back to 0, in one transaction: readers see old or empty. */
export async function resetReadModel(client: pg.ClientBase, n: ReadModelNames): Promise<void> {
  await migrateReadModel(client, n);
  await inLockedTransaction(client, n, async () => {
    await client.query(`DROP TABLE IF EXISTS ${n.sessions}, ${n.statements}, ${n.approvals}, ${n.workers}`);
    await client.query(tablesSql(n));
    await client.query(`UPDATE ${n.checkpoints} SET position = 0, updated_at = now() WHERE name = $1`, [
      READ_MODEL_PROJECTION,
    ]);
  });
}

async function inLockedTransaction(client: pg.ClientBase, n: ReadModelNames, work: () => Promise<void>) {
  await client.query("BEGIN");
  try {
    await client.query("SELECT pg_advisory_xact_lock($1)", [n.lockKey.toString()]);
    await work();
    await client.query("COMMIT");
  } catch (error) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw error;
  }
}
