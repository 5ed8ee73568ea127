import pg from "pg";
import { DEFAULT_READ_SCHEMA, readModelNames } from "./schema.ts";

export interface SessionSummary {
  sessionId: string;
  principal: { subject: string | null; groups: string[]; issuer: string | null; clientId: string | null };
  target: string | null;
  workerId: string | null;
  clientAddress: string | null;
  applicationName: string | null;
  tls: boolean | null;
  startedAt: Date | null;
  endedAt: Date | null;
  /** e.g. "client_closed"; null while the session is open. */
  endReason: string | null;
  endDetail: string | null;
  statementCount: number;
}

export interface StatementRecord {
  statementId: string;
  sequence: number | null;
  receivedAt: Date | null;
  sql: string | null;
  parameters: string[];
  protocol: string | null;
  fingerprint: string | null;
  classes: string[];
  /** "allow", "deny", "require_approval", or null when no policy decided. */
  effect: string | null;
  rule: string | null;
  reason: string | null;
  policyRevision: string | null;
  /** ok, error, refused, cancelled; null until StatementCompleted. */
  status: string | null;
  commandTag: string | null;
  rows: number | null;
  durationMicros: number | null;
  sqlstate: string | null;
  maskedCells: Record<string, number> | null;
  completedAt: Date | null;
}

/** An approval request of a session, as the approvals read model folds it. */
export interface ApprovalRecord {
  approvalId: string;
  requestedAt: Date | null;
  sql: string | null;
  rule: string | null;
  estimatedRows: number | null;
  objects: string[];
  approverGroups: string[];
  approvalsRequired: number | null;
  mode: string | null;
  /** pending, approved, denied, expired, withdrawn, used. */
  state: string;
  decisions: { approver: string; approved: boolean; reason?: string; via: string; at: string }[];
  decidedAt: Date | null;
  endedReason: string | null;
}

export interface SessionFilter {
  /** Exact principal subject. */
  principal?: string;
  /** Exact target name. */
  target?: string;
  /** Sessions open at some time since then: still open, or ended at or after it. */
  since?: Date;
  /** Newest first, at most this many; default 100. */
  limit?: number;
}

export interface ReadModel {
  listSessions(filter?: SessionFilter): Promise<SessionSummary[]>;
  session(sessionId: string): Promise<SessionSummary | undefined>;
  /** The session's statements in sequence order. */
  statements(sessionId: string): Promise<StatementRecord[]>;
  /** The session's approval requests in the order they were made. */
  approvals(sessionId: string): Promise<ApprovalRecord[]>;
  close(): Promise<void>;
}

export interface ReadModelOptions {
  connectionString: string;
  /** Default "agentgate_read". */
  schema?: string;
}

/** Queries over the projections; every read of sessions and statements goes through here, never the raw log. */
export function createReadModel(options: ReadModelOptions): ReadModel {
  const n = readModelNames(options.schema ?? DEFAULT_READ_SCHEMA);
  const pool = new pg.Pool({ connectionString: options.connectionString, max: 2, application_name: "agentgate-read" });
  pool.on("error", () => {});
  return {
    async listSessions(filter = {}) {
      const { rows } = await pool.query(
        `SELECT * FROM ${n.sessions}
          WHERE ($1::text IS NULL OR principal_subject = $1)
            AND ($2::text IS NULL OR target = $2)
            AND ($3::timestamptz IS NULL OR COALESCE(ended_at, 'infinity') >= $3)
          ORDER BY started_at DESC NULLS LAST, session_id
          LIMIT $4`,
        [filter.principal ?? null, filter.target ?? null, filter.since ?? null, filter.limit ?? 100],
      );
      return rows.map(toSession);
    },
    async session(sessionId) {
      const { rows } = await pool.query(`SELECT * FROM ${n.sessions} WHERE session_id = $1`, [sessionId]);
      return rows[0] === undefined ? undefined : toSession(rows[0]);
    },
    async statements(sessionId) {
      const { rows } = await pool.query(
        `SELECT * FROM ${n.statements} WHERE session_id = $1 ORDER BY sequence NULLS LAST, completed_at`,
        [sessionId],
      );
      return rows.map(toStatement);
    },
    async approvals(sessionId) {
      const { rows } = await pool.query(
        `SELECT * FROM ${n.approvals} WHERE session_id = $1 ORDER BY requested_at, approval_id`,
        [sessionId],
      );
      return rows.map(
        (r): ApprovalRecord => ({
          approvalId: r.approval_id as string,
          requestedAt: r.requested_at as Date | null,
          sql: r.sql as string | null,
          rule: r.rule as string | null,
          estimatedRows: int(r.estimated_rows),
          objects: (r.objects as string[] | null) ?? [],
          approverGroups: (r.approver_groups as string[] | null) ?? [],
          approvalsRequired: int(r.approvals_required),
          mode: r.mode as string | null,
          state: r.state as string,
          decisions: (r.decisions as ApprovalRecord["decisions"] | null) ?? [],
          decidedAt: r.decided_at as Date | null,
          endedReason: r.ended_reason as string | null,
        }),
      );
    },
    close: () => pool.end(),
  };
}

type Row = Record<string, unknown>;

const int = (value: unknown): number | null => (value === null || value === undefined ? null : Number(value));

function toSession(r: Row): SessionSummary {
  return {
    sessionId: r.session_id as string,
    principal: {
      subject: r.principal_subject as string | null,
      groups: (r.principal_groups as string[] | null) ?? [],
      issuer: r.principal_issuer as string | null,
      clientId: r.client_id as string | null,
    },
    target: r.target as string | null,
    workerId: r.worker_id as string | null,
    clientAddress: r.client_address as string | null,
    applicationName: r.application_name as string | null,
    tls: r.tls as boolean | null,
    startedAt: r.started_at as Date | null,
    endedAt: r.ended_at as Date | null,
    endReason: r.end_reason as string | null,
    endDetail: r.end_detail as string | null,
    statementCount: Number(r.statement_count),
  };
}

function toStatement(r: Row): StatementRecord {
  return {
    statementId: r.statement_id as string,
    sequence: int(r.sequence),
    receivedAt: r.received_at as Date | null,
    sql: r.sql as string | null,
    parameters: (r.parameters as string[] | null) ?? [],
    protocol: r.protocol as string | null,
    fingerprint: r.fingerprint as string | null,
    classes: (r.classes as string[] | null) ?? [],
    effect: r.effect as string | null,
    rule: r.rule as string | null,
    reason: r.reason as string | null,
    policyRevision: r.policy_revision as string | null,
    status: r.status as string | null,
    commandTag: r.command_tag as string | null,
    rows: int(r.rows),
    durationMicros: int(r.duration_micros),
    sqlstate: r.sqlstate as string | null,
    maskedCells: r.masked_cells as Record<string, number> | null,
    completedAt: r.completed_at as Date | null,
  };
}
