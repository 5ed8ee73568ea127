// Decider events ↔ the protobuf events stored in the event store (one stream per approval).
import { randomUUID } from "node:crypto";
import {
  ApprovalAnnouncedSchema,
  ApprovalConsumedSchema,
  ApprovalDeniedSchema,
  ApprovalExpiredSchema,
  ApprovalGrantedSchema,
  ApprovalRequestedSchema,
  ApprovalState,
  ApprovalWithdrawnSchema,
  type EventMeta,
  GrantIssuedSchema,
  GrantRevokedSchema,
  type Principal,
} from "@agentgate/events";
import type { EventToAppend, RecordedEvent } from "@agentgate/eventstore";
import { create, type DescMessage, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ApprovalEvent, ApprovalStatus, ApprovalState as State } from "./decider.ts";

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

function meta(event: ApprovalEvent, cx: Context): MessageInitShape<typeof import("@agentgate/events").EventMetaSchema> {
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
  const id = cx.approvalId;
  let schema: DescMessage;
  let message: unknown;
  switch (event.type) {
    case "requested":
      schema = ApprovalRequestedSchema;
      message = create(ApprovalRequestedSchema, {
        meta: m,
        approvalId: id,
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
      });
      break;
    case "granted":
      schema = ApprovalGrantedSchema;
      message = create(ApprovalGrantedSchema, {
        meta: { ...m, principal: event.approver },
        approvalId: id,
        via: event.via,
      });
      break;
    case "denied":
      schema = ApprovalDeniedSchema;
      message = create(ApprovalDeniedSchema, {
        meta: { ...m, principal: event.approver },
        approvalId: id,
        reason: event.reason,
        via: event.via,
      });
      break;
    case "expired":
      schema = ApprovalExpiredSchema;
      message = create(ApprovalExpiredSchema, { meta: m, approvalId: id });
      break;
    case "withdrawn":
      schema = ApprovalWithdrawnSchema;
      message = create(ApprovalWithdrawnSchema, { meta: m, approvalId: id, reason: event.reason });
      break;
    case "consumed":
      schema = ApprovalConsumedSchema;
      message = create(ApprovalConsumedSchema, { meta: m, approvalId: id });
      break;
    case "announced":
      schema = ApprovalAnnouncedSchema;
      message = create(ApprovalAnnouncedSchema, { meta: m, approvalId: id, channel: event.channel, ts: event.ts });
      break;
  }
  return {
    eventId: m.eventId as string,
    type: schema.typeName,
    data: toBinary(schema, message as never),
    occurredAt: event.at,
  };
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
          requester: meta.principal ?? principal(""),
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
        event: { type: "granted", approver: e.meta?.principal ?? principal(""), via: e.via, at },
      };
    }
    case "denied": {
      const e = fromBinary(ApprovalDeniedSchema, recorded.data);
      return {
        approvalId: e.approvalId,
        event: { type: "denied", approver: e.meta?.principal ?? principal(""), reason: e.reason, via: e.via, at },
      };
    }
    case "expired":
      return {
        approvalId: fromBinary(ApprovalExpiredSchema, recorded.data).approvalId,
        event: { type: "expired", at },
      };
    case "withdrawn": {
      const e = fromBinary(ApprovalWithdrawnSchema, recorded.data);
      return { approvalId: e.approvalId, event: { type: "withdrawn", reason: e.reason, at } };
    }
    case "consumed":
      return {
        approvalId: fromBinary(ApprovalConsumedSchema, recorded.data).approvalId,
        event: { type: "consumed", at },
      };
    case "announced": {
      const e = fromBinary(ApprovalAnnouncedSchema, recorded.data);
      return { approvalId: e.approvalId, event: { type: "announced", channel: e.channel, ts: e.ts, at } };
    }
  }
}

function principal(subject: string): Principal {
  return { $typeName: "agentgate.v1.Principal", subject, groups: [], issuer: "", clientId: "" };
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
export function viewOf(
  state: State,
  position: bigint,
): MessageInitShape<typeof import("@agentgate/events").ApprovalSchema> {
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

// ---- grants: stream "grant-<approval id>" ----------------------------------------------------------------------

export const GRANT_PREFIX = "grant-";

/** What the grant events say, folded. */
export interface GrantFacts {
  principal: Principal;
  target: string;
  classes: string[];
  expiresAt: Date;
  revoked: boolean;
}

/** The event that issues grant `id` (the approved grant request's id) to its requester, as the store appends it. */
export function grantIssued(id: string, grant: Omit<GrantFacts, "revoked">, at: Date, workerId: string): EventToAppend {
  const event = create(GrantIssuedSchema, {
    meta: {
      eventId: randomUUID(),
      occurredAt: timestampFromDate(at),
      principal: grant.principal,
      target: grant.target,
      workerId,
    },
    grantId: id,
    classes: grant.classes,
    expiresAt: timestampFromDate(grant.expiresAt),
  });
  return {
    eventId: event.meta!.eventId,
    type: GrantIssuedSchema.typeName,
    data: toBinary(GrantIssuedSchema, event),
    occurredAt: at,
  };
}

/** The event that ends grant `id` early; `by` is who revoked it. */
export function grantRevoked(
  id: string,
  by: Principal,
  target: string,
  reason: string,
  at: Date,
  workerId: string,
): EventToAppend {
  const event = create(GrantRevokedSchema, {
    meta: { eventId: randomUUID(), occurredAt: timestampFromDate(at), principal: by, target, workerId },
    grantId: id,
    reason,
  });
  return {
    eventId: event.meta!.eventId,
    type: GrantRevokedSchema.typeName,
    data: toBinary(GrantRevokedSchema, event),
    occurredAt: at,
  };
}

/** Folds a stored grant event into `grants` (by grant id); false for events of other types. */
export function applyGrantEvent(grants: Map<string, GrantFacts>, recorded: RecordedEvent): boolean {
  if (recorded.type === GrantIssuedSchema.typeName) {
    const e = fromBinary(GrantIssuedSchema, recorded.data);
    grants.set(e.grantId, {
      principal: e.meta?.principal ?? principal(""),
      target: e.meta?.target ?? "",
      classes: e.classes,
      expiresAt: e.expiresAt ? timestampDate(e.expiresAt) : new Date(0),
      revoked: false,
    });
    return true;
  }
  if (recorded.type === GrantRevokedSchema.typeName) {
    const grant = grants.get(fromBinary(GrantRevokedSchema, recorded.data).grantId);
    if (grant !== undefined) grant.revoked = true;
    return true;
  }
  return false;
}
