import {
  ApprovalDeniedSchema,
  ApprovalGrantedSchema,
  ApprovalRequestedSchema,
  ApprovalWithdrawnSchema,
} from "@agentgate/events";
import type { RecordedEvent } from "@agentgate/eventstore";
import { fromBinary } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type pg from "pg";
import type { ReadModelNames } from "./schema.ts";

export const APPROVAL_STREAM_PREFIX = "approval-";

/**
 * Folds an approval event (stream approval-<id>, written by the approval service) into the approvals read model:
 * the request with its estimate, each decision with who and when, and how it ended.
 */
export async function applyApprovalEvent(
  client: pg.ClientBase,
  n: ReadModelNames,
  event: RecordedEvent,
): Promise<void> {
  const at = event.occurredAt;
  switch (event.type) {
    case "agentgate.v1.ApprovalRequested": {
      const e = fromBinary(ApprovalRequestedSchema, event.data);
      await client.query(
        `INSERT INTO ${n.approvals} (approval_id, session_id, requester, target, requested_at, sql, rule, reason,
                                     estimated_rows, objects, approver_groups, approvals_required, mode, state,
                                     expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'pending', $14)
         ON CONFLICT (approval_id) DO NOTHING`,
        [
          e.approvalId,
          e.meta?.sessionId ?? "",
          e.meta?.principal?.subject ?? null,
          e.meta?.target ?? null,
          at,
          e.sql,
          e.rule,
          e.reason,
          e.estimatedRows < 0n ? null : e.estimatedRows.toString(),
          e.objects,
          e.approverGroups,
          e.approvalsRequired,
          e.mode,
          e.expiresAt ? timestampDate(e.expiresAt) : null,
        ],
      );
      return;
    }
    case "agentgate.v1.ApprovalGranted": {
      const e = fromBinary(ApprovalGrantedSchema, event.data);
      const decision = { approver: e.meta?.principal?.subject ?? "", approved: true, via: e.via, at: at.toISOString() };
      // Granted once enough distinct approvers have approved.
      await client.query(
        `UPDATE ${n.approvals} SET decisions = decisions || $2::jsonb,
            state = CASE WHEN (SELECT count(DISTINCT d->>'approver') FROM jsonb_array_elements(decisions || $2::jsonb) d
                               WHERE (d->>'approved')::boolean) >= approvals_required THEN 'approved' ELSE state END,
            decided_at = $3
          WHERE approval_id = $1`,
        [e.approvalId, JSON.stringify([decision]), at],
      );
      return;
    }
    case "agentgate.v1.ApprovalDenied": {
      const e = fromBinary(ApprovalDeniedSchema, event.data);
      const decision = {
        approver: e.meta?.principal?.subject ?? "",
        approved: false,
        reason: e.reason,
        via: e.via,
        at: at.toISOString(),
      };
      await client.query(
        `UPDATE ${n.approvals} SET decisions = decisions || $2::jsonb, state = 'denied', decided_at = $3
          WHERE approval_id = $1`,
        [e.approvalId, JSON.stringify([decision]), at],
      );
      return;
    }
    case "agentgate.v1.ApprovalExpired":
    case "agentgate.v1.ApprovalWithdrawn":
    case "agentgate.v1.ApprovalConsumed": {
      const id = fromBinary(ApprovalWithdrawnSchema, event.data).approvalId; // approval_id is field 2 in all three
      const state =
        event.type === "agentgate.v1.ApprovalExpired"
          ? "expired"
          : event.type === "agentgate.v1.ApprovalWithdrawn"
            ? "withdrawn"
            : "used";
      const reason =
        event.type === "agentgate.v1.ApprovalWithdrawn" ? fromBinary(ApprovalWithdrawnSchema, event.data).reason : null;
      await client.query(
        `UPDATE ${n.approvals} SET state = $2, ended_reason = $3, decided_at = COALESCE(decided_at, $4)
          WHERE approval_id = $1`,
        [id, state, reason, at],
      );
      return;
    }
  }
}
