import { randomUUID } from "node:crypto";
import type { AuditPublisher, OutgoingEvent } from "@agentgate/bus";
import {
  Effect,
  EventMetaSchema,
  SessionEndedSchema,
  SessionStartedSchema,
  SignInRefusedSchema,
  StatementCompletedSchema,
  StatementReceivedSchema,
  WorkerHeartbeatSchema,
} from "@agentgate/events";
import type { Principal } from "@agentgate/identity";
import { fingerprintOf } from "@agentgate/sql";
import { create, type DescMessage, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { timestampFromDate, timestampNow } from "@bufbuild/protobuf/wkt";
import type { Logger } from "pino";
import { type EventHead, encodeStatementCompleted, encodeStatementReceived } from "./audit-encoding.ts";
import type { Judgement } from "./enforce/gate.ts";

/** Statements whose fingerprints are remembered, and the longest text remembered (bounding the cache's memory). */
const FINGERPRINT_CACHE_ENTRIES = 4096;
const FINGERPRINT_CACHE_MAX_SQL = 4096;
const fingerprints = new Map<string, string>();

/**
 * The statement's fingerprint for the record; text the parser rejects has none. Agents and drivers repeat the same
 * texts (a parse each is the largest part of a record's cost), so recent ones are remembered, oldest out first.
 */
export function fingerprintOrEmpty(sql: string): string {
  if (sql === "") return "";
  const known = fingerprints.get(sql);
  if (known !== undefined) return known;
  let fingerprint: string;
  try {
    fingerprint = fingerprintOf(sql);
  } catch {
    fingerprint = "";
  }
  if (sql.length <= FINGERPRINT_CACHE_MAX_SQL) {
    if (fingerprints.size >= FINGERPRINT_CACHE_ENTRIES) fingerprints.delete(fingerprints.keys().next().value!);
    fingerprints.set(sql, fingerprint);
  }
  return fingerprint;
}

/**
 * Outcomes wait at most this long for the session's next statement record to ride with (one bus message per
 * statement instead of two), and leave on their own after it.
 */
const LINGER_MS = 50;
/** Outcomes waiting beyond this many go at once. */
const LATER_MAX_BATCH = 64;
/** Events the bus did not store are sent again after this long, and dropped (logged) beyond this many. */
const RETRY_MS = 1000;
const LATER_MAX_QUEUED = 10_000;

/** Every audit event has its EventMeta as field 1 (proto/agentgate/v1/audit.proto). */
const META_FIELD = 1;

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
  /** How it came: a simple Query, the extended protocol, or a fast-path FunctionCall (always refused). */
  protocol: "simple" | "extended" | "function-call";
  judgement: Judgement | undefined;
}

/** Outcome of one statement, gathered from the server's responses. */
export interface CompletedStatement {
  status: "ok" | "error" | "refused" | "skipped";
  commandTag: string;
  rows: bigint;
  sqlstate: string;
  durationMicros: bigint;
  /** Cells masked per column label (schema.table.column, or the output name of a computed column); never values. */
  maskedCells?: Record<string, bigint>;
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
  #sessionMetaBytes: Uint8Array | undefined;
  /** Events that need not be stored before anything runs (outcomes), waiting for the next message. */
  #later: OutgoingEvent[] = [];
  #lingerTimer: NodeJS.Timeout | undefined;

  constructor(options: SessionAuditOptions) {
    this.#o = options;
  }

  identify(principal: Principal | undefined, target: string): void {
    this.#principal = principal;
    this.#target = target;
    this.#sessionMetaBytes = undefined;
  }

  /**
   * The session's part of every event's meta (principal, target, session, worker), encoded once: an event is its
   * meta's per-event fields (id, time; field numbers 1-2) followed by these bytes (fields 3-6), then the body.
   * Protobuf encodes a message as its fields one after another, so this is byte for byte what encoding the whole
   * event gives (the audit tests check that); it saves most of an event's encoding cost.
   */
  #sessionMeta(): Uint8Array {
    if (this.#sessionMetaBytes === undefined) {
      const p = this.#principal;
      this.#sessionMetaBytes = toBinary(
        EventMetaSchema,
        create(EventMetaSchema, {
          principal: p
            ? { subject: p.subject, groups: p.groups, issuer: p.issuer, clientId: p.clientId ?? "" }
            : undefined,
          target: this.#target,
          sessionId: this.#o.sessionId,
          workerId: this.#o.workerId,
        }),
      );
    }
    return this.#sessionMetaBytes;
  }

  #encode<D extends DescMessage>(schema: D, body: MessageShape<D>): OutgoingEvent {
    if (schema.field.meta?.number !== META_FIELD) throw new Error(`${schema.typeName} has no meta as field 1`);
    const eventId = randomUUID();
    const own = toBinary(EventMetaSchema, create(EventMetaSchema, { eventId, occurredAt: timestampNow() }));
    const session = this.#sessionMeta();
    const writer = new BinaryWriter();
    writer
      .tag(META_FIELD, WireType.LengthDelimited)
      .uint32(own.length + session.length)
      .raw(own)
      .raw(session);
    writer.raw(toBinary(schema, body));
    return { typeName: schema.typeName, eventId, data: writer.finish() };
  }

  /**
   * Publishes an event now, together with (before) the outcomes waiting to go; resolves once the bus stored them.
   * If it cannot, the outcomes wait for the next message.
   */
  async #publishNow(event: OutgoingEvent): Promise<void> {
    const waiting = this.#later.splice(0);
    this.#cancelLinger();
    try {
      await this.#o.publisher.publish(this.#o.sessionId, [...waiting, event]);
    } catch (error) {
      this.#requeue(waiting);
      throw error;
    }
  }

  /** Queues an event that need not be stored before anything runs; it leaves with the next message or soon after. */
  #publishLater(event: OutgoingEvent): void {
    this.#later.push(event);
    if (this.#later.length >= LATER_MAX_BATCH) this.#flushLater();
    else this.#lingerTimer ??= setTimeout(() => this.#flushLater(), LINGER_MS).unref();
  }

  #flushLater(): void {
    this.#cancelLinger();
    const waiting = this.#later.splice(0);
    if (waiting.length === 0) return;
    this.#o.publisher.publish(this.#o.sessionId, waiting).catch((error: unknown) => {
      this.#o.logger.warn({ err: error, events: waiting.length }, "audit events not stored yet; retrying");
      this.#requeue(waiting);
    });
  }

  /** Puts events that did not get stored back in front of the queue, to go again; beyond a bound they are lost. */
  #requeue(events: OutgoingEvent[]): void {
    if (events.length === 0) return;
    this.#later.unshift(...events);
    const lost = this.#later.length - LATER_MAX_QUEUED;
    if (lost > 0) {
      this.#later.splice(0, lost);
      this.#o.logger.error({ lost }, "audit events lost: the bus has not stored them for too long");
    }
    this.#lingerTimer ??= setTimeout(() => this.#flushLater(), RETRY_MS).unref();
  }

  #cancelLinger(): void {
    if (this.#lingerTimer !== undefined) clearTimeout(this.#lingerTimer);
    this.#lingerTimer = undefined;
  }

  sessionStarted(details: { clientAddress: string; applicationName: string; tls: boolean }): Promise<void> {
    return this.#publishNow(this.#encode(SessionStartedSchema, create(SessionStartedSchema, details)));
  }

  /** The session's last event: it leaves at once, with any outcomes still waiting. */
  sessionEnded(reason: number, detail: string): void {
    this.#publishLater(this.#encode(SessionEndedSchema, create(SessionEndedSchema, { reason, detail })));
    this.#flushLater();
  }

  signInRefused(reason: string, clientAddress: string, user: string): void {
    this.#publishLater(this.#encode(SignInRefusedSchema, create(SignInRefusedSchema, { reason, clientAddress, user })));
    this.#flushLater();
  }

  /** Records a statement before it runs; returns its id once the bus has stored the event. */
  async received(statement: ReceivedStatement): Promise<string> {
    const statementId = randomUUID();
    const j = statement.judgement;
    const decision = j?.decision;
    this.#sequence++;
    const eventId = randomUUID();
    const data = encodeStatementReceived(this.#head(eventId), {
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
    });
    await this.#publishNow({ typeName: StatementReceivedSchema.typeName, eventId, data });
    return statementId;
  }

  /** Records a statement's outcome; it goes with the session's next statement record, or within LINGER_MS. */
  completed(statementId: string, outcome: CompletedStatement): void {
    const eventId = randomUUID();
    const data = encodeStatementCompleted(this.#head(eventId), { statementId, ...outcome });
    this.#publishLater({ typeName: StatementCompletedSchema.typeName, eventId, data });
  }

  #head(eventId: string): EventHead {
    return { eventId, occurredAtMs: Date.now(), sessionMeta: this.#sessionMeta() };
  }
}

/** A worker's heartbeat (WorkerHeartbeat): the audit service ends the open sessions of a worker whose beats stop. */
export function workerHeartbeat(
  workerId: string,
  intervalMs: number,
  openSessions: number,
  startedAt: Date,
): OutgoingEvent {
  const eventId = randomUUID();
  const data = toBinary(
    WorkerHeartbeatSchema,
    create(WorkerHeartbeatSchema, {
      meta: { eventId, occurredAt: timestampNow(), workerId },
      intervalMs,
      openSessions,
      startedAt: timestampFromDate(startedAt),
    }),
  );
  return { typeName: WorkerHeartbeatSchema.typeName, eventId, data };
}
