import { randomUUID } from "node:crypto";
import type { AuditPublisher } from "@agentgate/bus";
import {
  Effect,
  type EventMeta,
  EventMetaSchema,
  SessionEndedSchema,
  SessionStartedSchema,
  SignInRefusedSchema,
  StatementCompletedSchema,
  StatementReceivedSchema,
} from "@agentgate/events";
import type { Principal } from "@agentgate/identity";
import { fingerprintOf } from "@agentgate/sql";
import { create, type DescMessage, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import type { Logger } from "pino";
import type { Judgement } from "./enforce/gate.ts";

/** The statement's fingerprint for the record; text the parser rejects has none. */
function fingerprintOrEmpty(sql: string): string {
  try {
    return sql === "" ? "" : fingerprintOf(sql);
  } catch {
    return "";
  }
}

const EFFECTS = { allow: Effect.ALLOW, deny: Effect.DENY, require_approval: Effect.REQUIRE_APPROVAL } as const;

export interface SessionAuditOptions {
  publisher: AuditPublisher;
  sessionId: string;
  workerId: string;
  logger: Logger;
}

/** What the audit knows of a statement when it is received. */
export interface ReceivedStatement {
  sql: string;
  parameters: string[];
  protocol: "simple" | "extended";
  judgement: Judgement | undefined;
}

/** Outcome of one statement, gathered from the server's responses. */
export interface CompletedStatement {
  status: "ok" | "error" | "refused" | "skipped";
  commandTag: string;
  rows: bigint;
  sqlstate: string;
  durationMicros: bigint;
}

/**
 * One session's audit trail on the bus. Statement events are write-ahead: `received` resolves only when JetStream
 * has stored the event, and the caller forwards the statement only then. The rest is recorded asynchronously.
 */
export class SessionAudit {
  readonly #o: SessionAuditOptions;
  #principal: Principal | undefined;
  #target = "";
  #sequence = 0n;

  constructor(options: SessionAuditOptions) {
    this.#o = options;
  }

  identify(principal: Principal | undefined, target: string): void {
    this.#principal = principal;
    this.#target = target;
  }

  #meta(): EventMeta {
    const p = this.#principal;
    return create(EventMetaSchema, {
      eventId: randomUUID(),
      occurredAt: timestampNow(),
      principal: p ? { subject: p.subject, groups: p.groups, issuer: p.issuer, clientId: p.clientId ?? "" } : undefined,
      target: this.#target,
      sessionId: this.#o.sessionId,
      workerId: this.#o.workerId,
    });
  }

  #publish<D extends DescMessage>(schema: D, message: MessageShape<D> & { meta?: EventMeta }): Promise<void> {
    const meta = message.meta!;
    return this.#o.publisher.publish(this.#o.sessionId, schema.typeName, meta.eventId, toBinary(schema, message));
  }

  #background(promise: Promise<void>, what: string): void {
    promise.catch((error: unknown) => this.#o.logger.error({ err: error }, `audit event ${what} was not recorded`));
  }

  sessionStarted(details: { clientAddress: string; applicationName: string; tls: boolean }): Promise<void> {
    return this.#publish(SessionStartedSchema, create(SessionStartedSchema, { meta: this.#meta(), ...details }));
  }

  sessionEnded(reason: number, detail: string): void {
    this.#background(
      this.#publish(SessionEndedSchema, create(SessionEndedSchema, { meta: this.#meta(), reason, detail })),
      "SessionEnded",
    );
  }

  signInRefused(reason: string, clientAddress: string, user: string): void {
    this.#background(
      this.#publish(
        SignInRefusedSchema,
        create(SignInRefusedSchema, { meta: this.#meta(), reason, clientAddress, user }),
      ),
      "SignInRefused",
    );
  }

  /** Records a statement before it runs; returns its id once the bus has stored the event. */
  async received(statement: ReceivedStatement): Promise<string> {
    const statementId = randomUUID();
    const j = statement.judgement;
    const decision = j?.decision;
    this.#sequence++;
    await this.#publish(
      StatementReceivedSchema,
      create(StatementReceivedSchema, {
        meta: this.#meta(),
        statementId,
        sequence: this.#sequence,
        sql: statement.sql,
        parameters: statement.parameters,
        protocol: statement.protocol,
        fingerprint: j?.fingerprint || fingerprintOrEmpty(statement.sql),
        statements: j?.statements ?? [],
        effect: decision ? EFFECTS[decision.effect] : Effect.UNSPECIFIED,
        rule: decision?.rule ?? "",
        reason: decision?.reason ?? "",
        policyRevision: decision?.revision ?? "",
      }),
    );
    return statementId;
  }

  completed(statementId: string, outcome: CompletedStatement): void {
    this.#background(
      this.#publish(
        StatementCompletedSchema,
        create(StatementCompletedSchema, { meta: this.#meta(), statementId, ...outcome }),
      ),
      "StatementCompleted",
    );
  }
}
