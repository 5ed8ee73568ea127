import { randomUUID } from "node:crypto";
import {
  Effect,
  type EventMeta,
  EventMetaSchema,
  type SessionEnded,
  SessionEndedSchema,
  type SessionEndReason,
  type SessionStarted,
  SessionStartedSchema,
  type StatementCompleted,
  StatementCompletedSchema,
  type StatementReceived,
  StatementReceivedSchema,
} from "@agentgate/events";
import { create, type DescMessage, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { JetStreamClient, PubAck } from "@nats-io/jetstream";
import { headers } from "@nats-io/transport-node";
import { auditSubject, POLICY_SUBJECT, TYPE_HEADER } from "../contract.ts";
import { type AuditEvent, EVENT_TYPES, metaOf } from "../event-types.ts";

/** Publishes an event as the proxy does: its type header, Nats-Msg-Id = event id, its session's subject. */
export function publishEvent(js: JetStreamClient, event: AuditEvent): Promise<PubAck> {
  const meta = metaOf(event);
  const h = headers();
  h.set(TYPE_HEADER, event.$typeName);
  const subject =
    event.$typeName === "agentgate.v1.PolicyRevisionActivated" ? POLICY_SUBJECT : auditSubject(meta.sessionId);
  const data = toBinary(EVENT_TYPES[event.$typeName] as DescMessage, event);
  return js.publish(subject, data, { msgID: meta.eventId, headers: h });
}

export interface TestSessionOptions {
  sessionId?: string;
  subject?: string;
  groups?: string[];
  issuer?: string;
  target?: string;
  workerId?: string;
  clientAddress?: string;
  applicationName?: string;
  /** When the session starts; every event advances the session's clock by `stepMs`. */
  startedAt?: Date;
  stepMs?: number;
}

export interface TestStatement {
  sql: string;
  parameters?: string[];
  effect?: Effect;
  rule?: string;
  policyRevision?: string;
  classes?: string[];
  fingerprint?: string;
}

export interface TestOutcome {
  status?: string;
  commandTag?: string;
  rows?: bigint;
  durationMicros?: bigint;
  sqlstate?: string;
  maskedCells?: Record<string, bigint>;
}

/** Builds one session's events the way a proxy worker would, with a deterministic clock. */
export function testSession(options: TestSessionOptions = {}) {
  const sessionId = options.sessionId ?? randomUUID();
  const step = options.stepMs ?? 10;
  let clock = (options.startedAt ?? new Date()).getTime();
  let sequence = 0n;
  const meta = (): EventMeta => {
    const at = clock;
    clock += step;
    return create(EventMetaSchema, {
      eventId: randomUUID(),
      occurredAt: timestampFromMs(at),
      principal: {
        subject: options.subject ?? "agent-1",
        groups: options.groups ?? ["analysts"],
        issuer: options.issuer ?? "https://idp.example.com/",
      },
      target: options.target ?? "app",
      sessionId,
      workerId: options.workerId ?? "proxy-1",
    });
  };
  return {
    sessionId,
    /** Moves the session's clock forward. */
    advance(ms: number): void {
      clock += ms;
    },
    started(): SessionStarted {
      return create(SessionStartedSchema, {
        meta: meta(),
        clientAddress: options.clientAddress ?? "127.0.0.1:50000",
        applicationName: options.applicationName ?? "psql",
        tls: true,
      });
    },
    received(statement: TestStatement): StatementReceived {
      sequence += 1n;
      return create(StatementReceivedSchema, {
        meta: meta(),
        statementId: randomUUID(),
        sequence,
        sql: statement.sql,
        parameters: statement.parameters ?? [],
        protocol: "simple",
        fingerprint: statement.fingerprint ?? "",
        statements: [{ class: statement.classes?.[0] ?? "read", classes: statement.classes ?? ["read"] }],
        effect: statement.effect ?? Effect.ALLOW,
        rule: statement.rule ?? "",
        policyRevision: statement.policyRevision ?? "",
      });
    },
    completed(received: StatementReceived, outcome: TestOutcome = {}): StatementCompleted {
      return create(StatementCompletedSchema, {
        meta: meta(),
        statementId: received.statementId,
        status: outcome.status ?? "ok",
        commandTag: outcome.commandTag ?? "SELECT 1",
        rows: outcome.rows ?? 1n,
        durationMicros: outcome.durationMicros ?? 1500n,
        sqlstate: outcome.sqlstate ?? "",
        maskedCells: outcome.maskedCells ?? {},
      });
    },
    ended(reason: SessionEndReason, detail = ""): SessionEnded {
      return create(SessionEndedSchema, { meta: meta(), reason, detail });
    },
  };
}

export type TestSession = ReturnType<typeof testSession>;
