// Decider events ↔ the protobuf events stored in the event store (one stream per approval).
import { randomUUID } from "node:crypto";
import {
  ApprovalAnnouncedSchema,
  ApprovalConsumedSchema,
  ApprovalDeniedSchema,
  ApprovalExpiredSchema,
  ApprovalGrantedSchema,
  ApprovalRequestedSchema,
  type ApprovalSchema,
  ApprovalState,
  ApprovalWithdrawnSchema,
  type EventMeta,
  type EventMetaSchema,
  type Principal,
} from "@agentgate/events";
import type { EventToAppend, RecordedEvent } from "@agentgate/eventstore";
import { create, type DescMessage, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ApprovalEvent, ApprovalStatus, RequestedApproval } from "./approval-decider.ts";

export const STREAM_PREFIX = "approval-";

export function streamOf(approvalId: string): string {
  return `${STREAM_PREFIX}${approvalId}`;
}

const TYPES = {
  requested: ApprovalRequestedSchema,
  granted: ApprovalGrantedSchema,
  denied: ApprovalDeniedSchema,
  expired: ApprovalExpiredSchema,
  withdrawn: ApprovalWithdrawnSchema,
  consumed: ApprovalConsumedSchema,
  announced: ApprovalAnnouncedSchema,
} as const;

const BY_TYPE_NAME = new Map<string, keyof typeof TYPES>(
  Object.entries(TYPES).map(([kind, schema]) => [schema.typeName, kind as keyof typeof TYPES]),
);

export function isApprovalEventType(typeName: string): boolean {
  return BY_TYPE_NAME.has(typeName);
}

/** Who acted and where, for an event's meta: the requester for the request, the approver for a decision. */
interface Context {
  approvalId: string;
  request: { requester: Principal; target: string; sessionId: string } | undefined;
  actor: Principal | undefined;
  workerId: string;
}

function meta(event: ApprovalEvent, cx: Context): MessageInitShape<typeof EventMetaSchema> {
  const request = event.type === "requested" ? event : cx.request;
  return {
    eventId: randomUUID(),
    occurredAt: timestampFromDate(event.at),
    principal: event.type === "requested" ? event.requester : cx.actor,
    target: request?.target ?? "",
    sessionId: request?.sessionId ?? "",
    workerId: cx.workerId,
  };
}

/** A decider event as the store appends it. */
export function toStored(event: ApprovalEvent, cx: Context): EventToAppend {
  const m = meta(event, cx);
  const [schema, message] = body(event, m, cx.approvalId);
  return {
    eventId: m.eventId as string,
    type: schema.typeName,
    data: toBinary(schema, create(schema, message as never)),
    occurredAt: event.at,
  };
}

type Meta = ReturnType<typeof meta>;

/** The protobuf message (its schema and fields) that records `event`. */
function body(event: ApprovalEvent, m: Meta, approvalId: string): [DescMessage, object] {
  switch (event.type) {
    case "requested":
      return [
        ApprovalRequestedSchema,
        {
          meta: m,
          approvalId,
          sql: event.sql,
          parameters: event.parameters,
          rule: event.rule,
          reason: event.reason,
          approverGroups: event.approverGroups,
          approvalsRequired: event.approvalsRequired,
          estimatedRows: event.estimatedRows,
          objects: event.objects,
          expiresAt: timestampFromDate(event.expiresAt),
          mode: event.mode,
          fingerprint: event.fingerprint,
          grantClasses: event.grantClasses,
          grantSeconds: event.grantSeconds,
        },
      ];
    case "granted":
      return [ApprovalGrantedSchema, { meta: { ...m, principal: event.approver }, approvalId, via: event.via }];
    case "denied": {
      const { reason, via } = event;
      return [ApprovalDeniedSchema, { meta: { ...m, principal: event.approver }, approvalId, reason, via }];
    }
    case "expired":
      return [ApprovalExpiredSchema, { meta: m, approvalId }];
    case "withdrawn":
      return [ApprovalWithdrawnSchema, { meta: m, approvalId, reason: event.reason }];
    case "consumed":
      return [ApprovalConsumedSchema, { meta: m, approvalId }];
    case "announced":
      return [ApprovalAnnouncedSchema, { meta: m, approvalId, channel: event.channel, ts: event.ts }];
  }
}

/** A stored approval event back as a decider event, with its approval id; undefined for other types. */
export function fromStored(recorded: RecordedEvent): { approvalId: string; event: ApprovalEvent } | undefined {
  const kind = BY_TYPE_NAME.get(recorded.type);
  if (kind === undefined) return undefined;
  const at = recorded.occurredAt;
  switch (kind) {
    case "requested": {
      const e = fromBinary(ApprovalRequestedSchema, recorded.data);
      const meta = e.meta as EventMeta;
      return {
        approvalId: e.approvalId,
        event: {
          type: "requested",
          approvalId: e.approvalId,
          requester: meta.principal ?? noPrincipal(),
          target: meta.target,
          sessionId: meta.sessionId,
          sql: e.sql,
          parameters: e.parameters,
          rule: e.rule,
          reason: e.reason,
          approverGroups: e.approverGroups,
          approvalsRequired: e.approvalsRequired,
          estimatedRows: e.estimatedRows,
          objects: e.objects,
          fingerprint: e.fingerprint,
          mode: e.mode === "deferred" || e.mode === "grant" ? e.mode : "wait",
          grantClasses: e.grantClasses,
          grantSeconds: e.grantSeconds,
          at,
          expiresAt: e.expiresAt ? timestampDate(e.expiresAt) : at,
        },
      };
    }
    case "granted": {
      const e = fromBinary(ApprovalGrantedSchema, recorded.data);
      return {
        approvalId: e.approvalId,
        event: { type: "granted", approver: e.meta?.principal ?? noPrincipal(), via: e.via, at },
      };
    }
    case "denied": {
      const e = fromBinary(ApprovalDeniedSchema, recorded.data);
      return {
        approvalId: e.approvalId,
        event: { type: "denied", approver: e.meta?.principal ?? noPrincipal(), reason: e.reason, via: e.via, at },
      };
    }
    case "expired":
    case "consumed":
      return { approvalId: fromBinary(TYPES[kind], recorded.data).approvalId, event: { type: kind, at } };
    case "withdrawn": {
      const e = fromBinary(ApprovalWithdrawnSchema, recorded.data);
      return { approvalId: e.approvalId, event: { type: "withdrawn", reason: e.reason, at } };
    }
    case "announced": {
      const e = fromBinary(ApprovalAnnouncedSchema, recorded.data);
      return { approvalId: e.approvalId, event: { type: "announced", channel: e.channel, ts: e.ts, at } };
    }
  }
}

/** Stands for a principal an event lacks (never written by this service). */
export function noPrincipal(): Principal {
  return { $typeName: "agentgate.v1.Principal", subject: "", groups: [], issuer: "", clientId: "" };
}

const STATES: Record<ApprovalStatus, ApprovalState> = {
  pending: ApprovalState.PENDING,
  approved: ApprovalState.APPROVED,
  denied: ApprovalState.DENIED,
  expired: ApprovalState.EXPIRED,
  withdrawn: ApprovalState.WITHDRAWN,
  consumed: ApprovalState.CONSUMED,
};

export function stateOf(status: ApprovalStatus): ApprovalState {
  return STATES[status];
}

/** The API's view of an approval. */
export function viewOf(state: RequestedApproval, position: bigint): MessageInitShape<typeof ApprovalSchema> {
  const r = state.request;
  return {
    id: r.approvalId,
    state: STATES[state.status],
    requester: r.requester,
    target: r.target,
    sessionId: r.sessionId,
    sql: r.sql,
    parameters: r.parameters,
    rule: r.rule,
    reason: r.reason,
    approverGroups: r.approverGroups,
    approvalsRequired: r.approvalsRequired,
    estimatedRows: r.estimatedRows,
    objects: r.objects,
    requestedAt: timestampFromDate(r.at),
    expiresAt: timestampFromDate(r.expiresAt),
    mode: r.mode,
    fingerprint: r.fingerprint,
    position,
    notices: state.notices,
    decisions: state.decisions.map((d) => ({
      approver: d.approver,
      approved: d.approved,
      reason: d.reason,
      via: d.via,
      at: timestampFromDate(d.at),
    })),
  };
}
