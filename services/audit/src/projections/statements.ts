import { Effect, type StatementCompleted, type StatementReceived } from "@agentgate/events";
import type pg from "pg";
import type { ReadModelNames } from "./schema.ts";
import { text, touchSession } from "./sessions.ts";

export async function statementReceived(
  client: pg.ClientBase,
  n: ReadModelNames,
  sessionId: string,
  event: StatementReceived,
  occurredAt: Date,
  position: bigint,
): Promise<void> {
  // A completion may have arrived first; the statement counts once, when its StatementReceived is applied.
  const { rowCount } = await client.query(
    `INSERT INTO ${n.statements} AS st (session_id, statement_id, sequence, received_at, sql, parameters, protocol,
                                        fingerprint, classes, effect, rule, reason, policy_revision)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
     ON CONFLICT (session_id, statement_id) DO UPDATE SET
       sequence = EXCLUDED.sequence, received_at = EXCLUDED.received_at, sql = EXCLUDED.sql,
       parameters = EXCLUDED.parameters, protocol = EXCLUDED.protocol, fingerprint = EXCLUDED.fingerprint,
       classes = EXCLUDED.classes, effect = EXCLUDED.effect, rule = EXCLUDED.rule, reason = EXCLUDED.reason,
       policy_revision = EXCLUDED.policy_revision
     WHERE st.received_at IS NULL`,
    [
      sessionId,
      event.statementId,
      event.sequence.toString(),
      occurredAt,
      event.sql,
      event.parameters,
      text(event.protocol),
      text(event.fingerprint),
      classesOf(event),
      effectName(event.effect),
      text(event.rule),
      text(event.reason),
      text(event.policyRevision),
    ],
  );
  await touchSession(client, n, sessionId, event.meta!, position, rowCount ?? 0);
}

export async function statementCompleted(
  client: pg.ClientBase,
  n: ReadModelNames,
  sessionId: string,
  event: StatementCompleted,
  occurredAt: Date,
  position: bigint,
): Promise<void> {
  const masked = Object.fromEntries(
    Object.entries(event.maskedCells).map(([column, count]) => [column, Number(count)]),
  );
  await client.query(
    `INSERT INTO ${n.statements} (session_id, statement_id, status, command_tag, rows, duration_micros, sqlstate,
                                  masked_cells, completed_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
     ON CONFLICT (session_id, statement_id) DO UPDATE SET
       status = EXCLUDED.status, command_tag = EXCLUDED.command_tag, rows = EXCLUDED.rows,
       duration_micros = EXCLUDED.duration_micros, sqlstate = EXCLUDED.sqlstate,
       masked_cells = EXCLUDED.masked_cells, completed_at = EXCLUDED.completed_at`,
    [
      sessionId,
      event.statementId,
      text(event.status),
      text(event.commandTag),
      event.rows.toString(),
      event.durationMicros.toString(),
      text(event.sqlstate),
      Object.keys(masked).length === 0 ? null : JSON.stringify(masked),
      occurredAt,
    ],
  );
  await touchSession(client, n, sessionId, event.meta!, position);
}

/** "allow", "deny", "require_approval"; null when no policy decided (EFFECT_UNSPECIFIED). */
export function effectName(effect: Effect): string | null {
  return effect === Effect.UNSPECIFIED ? null : (Effect[effect]?.toLowerCase() ?? null);
}

/** Every class of every statement in the string, first seen first. */
function classesOf(event: StatementReceived): string[] {
  const classes = event.statements.flatMap((facts) => (facts.classes.length > 0 ? facts.classes : [facts.class]));
  return [...new Set(classes.filter((c) => c !== ""))];
}
