import { AUDIT_STREAM, ensureAuditStream, sessionIdOfSubject, TYPE_HEADER } from "@agentgate/bus";
import { type EventStore, EventStoreError, type EventToAppend } from "@agentgate/eventstore";
import { type JetStreamManager, type JsMsg, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { type Logger, pino } from "pino";
import { type BackoffOptions, backoffDelay, sleep } from "../backoff.ts";
import { batches } from "../batches.ts";
import { type ConsumerSettings, ensureConsumer, realign } from "./consumer.ts";
import { toStoreEvents } from "./to-store-event.ts";

export interface IngesterOptions {
  /** nats://host:port, one or more. */
  natsServers: string | string[];
  eventStore: EventStore;
  /** The JetStream durable consumer's name; one ingester per durable. Default "audit-ingester". */
  durable?: string;
  /** Messages asked for per pull (and the consumer's max_ack_pending is twice this); default 256. */
  batch?: number;
  /** A message not acknowledged this long is delivered again; default 30 s. */
  ackWaitMs?: number;
  /** Replicas of the audit stream if the ingester creates it; default 1. */
  replicas?: number;
  /** How long one pull waits for messages; default 5 s (at least 1 s). */
  pullExpiresMs?: number;
  /** Delays between retries while the event store or NATS fails. */
  backoff?: BackoffOptions;
  logger?: Logger;
}

/** One bus message and the events it carries (several for an EventBatch). */
interface Unit {
  msg: JsMsg;
  events: EventToAppend[];
}

export interface IngesterStats {
  /** Events appended to the store (or found already stored) whose messages were acknowledged. */
  stored: number;
  /** Messages that can never be stored (not decodable, wrong subject, conflicting id), terminated and logged. */
  terminated: number;
  /** Appends that failed and were retried (the messages stayed unacknowledged in JetStream). */
  storeFailures: number;
  /** Times the consumer was re-created at its ack floor to get unacknowledged messages again in order. */
  realignments: number;
  /** Stream sequence of the last message handled. */
  lastSequence: number;
}

export interface Ingester {
  /** Connects (waiting for NATS if needed), makes sure stream and consumer exist, then ingests in the background. */
  start(): Promise<void>;
  /** Stops pulling; messages not yet stored are handed back (nak) and stay in JetStream. */
  stop(): Promise<void>;
  stats(): IngesterStats;
  /**
   * Messages on the bus that are not stored yet (pending and unacknowledged, from the consumer's info); throws while
   * the ingester is not connected.
   */
  backlog(): Promise<number>;
}

/**
 * The audit ingester: a durable JetStream pull consumer that appends each audit event to the event store (stream
 * `session-<id>`, data unchanged) and acknowledges it only after the append committed. Redeliveries are harmless
 * (the store skips known event ids); while the store fails nothing is acknowledged and the batch is retried with
 * backoff; a message that can never be stored is terminated, counted and logged with its type and subject only.
 * Each session's events reach the store in stream order.
 */
export function createIngester(options: IngesterOptions): Ingester {
  const logger = options.logger ?? pino({ level: "silent" });
  const batch = options.batch ?? 256;
  if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`batch must be a positive integer, got ${batch}`);
  const settings: ConsumerSettings = {
    durable: options.durable ?? "audit-ingester",
    ackWaitMs: options.ackWaitMs ?? 30_000,
    maxAckPending: batch * 2,
  };
  const pullExpiresMs = Math.max(options.pullExpiresMs ?? 5000, 1000);
  const stats: IngesterStats = { stored: 0, terminated: 0, storeFailures: 0, realignments: 0, lastSequence: 0 };
  const stopping = new AbortController();
  const stopped = new Promise<void>((resolve) =>
    stopping.signal.addEventListener("abort", () => resolve(), { once: true }),
  );
  let nc: NatsConnection | undefined;
  let manager: JetStreamManager | undefined;
  let running: Promise<void> | undefined;
  // Whether what the server has delivered may differ from what we handled: check before the next pull.
  let suspect = true;
  // The stream sequence the next new message must have; undefined right after (re)alignment.
  let expected: number | undefined;
  // The pull in progress: a reconnect ends it, since the restarted server no longer knows the request.
  let pull: { stop(): void } | undefined;
  // Set while disconnected: requests sent meanwhile are never answered, so the loop waits for the reconnect.
  let reconnected: { promise: Promise<void>; resolve(): void } | undefined;

  const terminate = (msg: JsMsg, reason: string) => {
    msg.term();
    stats.terminated += 1;
    stats.lastSequence = Math.max(stats.lastSequence, msg.seq);
    logger.error(
      {
        subject: msg.subject,
        session: sessionIdOfSubject(msg.subject),
        type: msg.headers?.get(TYPE_HEADER),
        seq: msg.seq,
        reason,
      },
      "audit event cannot be stored: terminated",
    );
  };

  // A lost ack (NATS restarting) costs a redelivery later, which the store skips: no need to wait for ack replies.
  const acknowledge = (units: Unit[]) => {
    for (const unit of units) {
      unit.msg.ack();
      stats.stored += unit.events.length;
      stats.lastSequence = Math.max(stats.lastSequence, unit.msg.seq);
    }
  };

  /** Appends one stream's events in order until it succeeds, is refused for good, or the ingester stops. */
  const appendInOrder = async (stream: string, units: Unit[]): Promise<void> => {
    const events = units.flatMap((unit) => unit.events);
    for (let attempt = 0; ; attempt++) {
      if (stopping.signal.aborted) {
        for (const unit of units) unit.msg.nak();
        return;
      }
      try {
        await options.eventStore.append(stream, events, { expectedRevision: "any" });
        acknowledge(units);
        return;
      } catch (error) {
        if (isPermanent(error)) {
          if (units.length === 1) return terminate(units[0]!.msg, (error as Error).message);
          // Find the message that is refused: the others still go in, in order.
          for (const unit of units) await appendInOrder(stream, [unit]);
          return;
        }
        stats.storeFailures += 1;
        const level = attempt === 0 ? "warn" : "debug";
        logger[level]({ err: error, stream, events: events.length, attempt }, "event store append failed; retrying");
        // Keep the messages ours meanwhile, so JetStream does not deliver them again behind newer ones.
        for (const unit of units) unit.msg.working();
        await sleep(Math.min(backoffDelay(attempt, options.backoff), settings.ackWaitMs / 3), stopping.signal);
      }
    }
  };

  /** Handles messages in delivery order; returns false when a gap shows that earlier ones were lost on the way. */
  const handle = async (messages: JsMsg[]): Promise<boolean> => {
    const streams = new Map<string, Unit[]>();
    let inOrder = true;
    for (const msg of messages) {
      if (expected !== undefined && msg.seq > expected) {
        logger.warn({ expected, seq: msg.seq }, "messages were delivered but not received; realigning");
        inOrder = false;
        break;
      }
      if (expected === undefined || msg.seq === expected) expected = msg.seq + 1;
      const mapped = toStoreEvents(msg.subject, msg.headers?.get(TYPE_HEADER), msg.data);
      if (!mapped.ok) {
        terminate(msg, mapped.reason);
        continue;
      }
      const units = streams.get(mapped.stream) ?? [];
      units.push({ msg, events: mapped.events });
      streams.set(mapped.stream, units);
    }
    // Streams are independent: their appends go together (the store group-commits them).
    await Promise.all([...streams].map(([stream, units]) => appendInOrder(stream, units)));
    return inOrder;
  };

  const pullOnce = async (jsm: JetStreamManager): Promise<void> => {
    if (suspect) {
      suspect = false;
      const realigned = await realign(jsm, settings);
      expected = undefined;
      if (realigned.restartedAt !== undefined) {
        stats.realignments += 1;
        logger.info(realigned, "unacknowledged audit events found; delivering again from the ack floor");
      }
    }
    const consumer = await jetstream(nc!).consumers.get(AUDIT_STREAM, settings.durable);
    const messages = await consumer.fetch({ max_messages: batch, expires: pullExpiresMs });
    pull = messages;
    const stop = () => messages.stop();
    stopping.signal.addEventListener("abort", stop, { once: true });
    try {
      for await (const received of batches(messages, batch)) {
        if (!(await handle(received))) {
          suspect = true;
          break;
        }
        if (stopping.signal.aborted) break;
      }
    } finally {
      pull = undefined;
      stopping.signal.removeEventListener("abort", stop);
      messages.stop();
    }
  };

  const run = async (jsm: JetStreamManager) => {
    for (let failures = 0; !stopping.signal.aborted; ) {
      if (reconnected !== undefined) await Promise.race([reconnected.promise, stopped]);
      try {
        await pullOnce(jsm);
        failures = 0;
      } catch (error) {
        if (stopping.signal.aborted) break;
        suspect = true;
        logger.warn({ err: error, failures }, "pulling audit events failed; retrying");
        await sleep(backoffDelay(failures++, options.backoff), stopping.signal);
      }
    }
  };

  const watchConnection = async (connection: NatsConnection) => {
    for await (const status of connection.status()) {
      if (status.type === "disconnect" || status.type === "reconnect") {
        suspect = true;
        logger.info({ status: status.type }, `NATS ${status.type}`);
      }
      if (status.type === "disconnect") reconnected ??= gate();
      if (status.type === "reconnect") {
        reconnected?.resolve();
        reconnected = undefined;
        pull?.stop();
      }
    }
  };

  return {
    async start() {
      if (running !== undefined) throw new Error("the ingester is already started");
      nc = await connect({
        servers: options.natsServers,
        name: `agentgate-audit-${settings.durable}`,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
        waitOnFirstConnect: true,
      });
      void watchConnection(nc).catch(() => undefined);
      const jsm = await jetstreamManager(nc);
      manager = jsm;
      await ensureAuditStream(jsm, { replicas: options.replicas ?? 1 });
      await ensureConsumer(jsm, settings);
      logger.info({ durable: settings.durable, batch }, "audit ingester started");
      running = run(jsm);
    },
    async stop() {
      if (stopping.signal.aborted) return;
      stopping.abort();
      await running;
      await nc?.drain().catch(() => nc?.close());
      logger.info(stats, "audit ingester stopped");
    },
    stats: () => ({ ...stats }),
    async backlog() {
      if (manager === undefined || nc === undefined || nc.isClosed()) throw new Error("the ingester is not connected");
      const info = await manager.consumers.info(AUDIT_STREAM, settings.durable);
      return info.num_pending + info.num_ack_pending;
    },
  };
}

function gate(): { promise: Promise<void>; resolve(): void } {
  let resolve!: () => void;
  const promise = new Promise<void>((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

/** Errors that no retry can cure: the store refuses the event itself. */
function isPermanent(error: unknown): boolean {
  return error instanceof EventStoreError && (error.code === "event_id_conflict" || error.code === "invalid_argument");
}
