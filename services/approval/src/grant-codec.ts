// Grant decider events ↔ the protobuf events GrantIssued and GrantRevoked (stream `grant-<approval id>`).
import { randomUUID } from "node:crypto";
import { GrantIssuedSchema, GrantRevokedSchema, type GrantSchema } from "@agentgate/events";
import type { EventToAppend, RecordedEvent } from "@agentgate/eventstore";
import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { noPrincipal } from "./codec.ts";
import type { GrantEvent, GrantTerms } from "./grant-decider.ts";

export const GRANT_PREFIX = "grant-";

export function grantStreamOf(grantId: string): string {
  return `${GRANT_PREFIX}${grantId}`;
}

/** A grant event as the store appends it; `target` is the grant's, for a revocation (which does not name it). */
export function grantToStored(
  event: GrantEvent,
  cx: { grantId: string; target: string; workerId: string },
): EventToAppend {
  const target = event.type === "issued" ? event.target : cx.target;
  const meta = { eventId: randomUUID(), occurredAt: timestampFromDate(event.at), target, workerId: cx.workerId };
  const [type, data] =
    event.type === "issued"
      ? [
          GrantIssuedSchema.typeName,
          toBinary(
            GrantIssuedSchema,
            create(GrantIssuedSchema, {
              meta: { ...meta, principal: event.principal }, // the grantee
              grantId: cx.grantId,
              classes: event.classes,
              expiresAt: timestampFromDate(event.expiresAt),
            }),
          ),
        ]
      : [
          GrantRevokedSchema.typeName,
          toBinary(
            GrantRevokedSchema,
            create(GrantRevokedSchema, {
              meta: { ...meta, principal: event.by },
              grantId: cx.grantId,
              reason: event.reason,
            }),
          ),
        ];
  return { eventId: meta.eventId, type, data, occurredAt: event.at };
}

/** A stored grant event back as a decider event, with its grant id; undefined for other types. */
export function grantFromStored(recorded: RecordedEvent): { grantId: string; event: GrantEvent } | undefined {
  const at = recorded.occurredAt;
  if (recorded.type === GrantIssuedSchema.typeName) {
    const e = fromBinary(GrantIssuedSchema, recorded.data);
    const event: GrantEvent = {
      type: "issued",
      grantId: e.grantId,
      principal: e.meta?.principal ?? noPrincipal(),
      target: e.meta?.target ?? "",
      classes: e.classes,
      expiresAt: e.expiresAt ? timestampDate(e.expiresAt) : new Date(0),
      at,
    };
    return { grantId: e.grantId, event };
  }
  if (recorded.type === GrantRevokedSchema.typeName) {
    const e = fromBinary(GrantRevokedSchema, recorded.data);
    return {
      grantId: e.grantId,
      event: { type: "revoked", by: e.meta?.principal ?? noPrincipal(), reason: e.reason, at },
    };
  }
  return undefined;
}

/** The API's view of a grant. */
export function grantViewOf(grant: GrantTerms): MessageInitShape<typeof GrantSchema> {
  return {
    id: grant.grantId,
    principal: grant.principal,
    target: grant.target,
    classes: grant.classes,
    expiresAt: timestampFromDate(grant.expiresAt),
  };
}
