import { jetstreamManager } from "@nats-io/jetstream";
import { createInbox, headers, type Msg, type MsgHdrs } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { AUDIT_STREAM, auditSubject, ensureAuditStream, TYPE_HEADER, workerSubject } from "./contract.ts";
import { BusError } from "./errors.ts";
import { type BusEvent, messageOfEvents } from "./event-types.ts";

export interface AuditPublisherOptions {
  /** nats://host:port, one or more. */
  servers: string | string[];
  /** A publish not acknowledged within this time fails (the proxy then refuses the statement). */
  ackTimeoutMs: number;
  /** Stream replicas when the publisher creates the stream. */
  replicas?: number;
  /** Called with connection status changes, for logs. */
  onStatus?: (status: { type: string; data?: unknown }) => void;
}

/** An event to publish: its type name, its id (from its meta) and its bytes. */
export interface OutgoingEvent extends BusEvent {
  eventId: string;
}

/** Publishes audit events to JetStream and resolves only once the stream has stored them. */
export interface AuditPublisher {
  /**
   * Publishes one session's events, in order, as one message (an EventBatch when there are several; its message id
   * is the last event's id, so the stream de-duplicates a message sent twice). Resolves when the stream stored it.
   */
  publish(sessionId: string, events: readonly OutgoingEvent[]): Promise<void>;
  /** Publishes a worker's own event (WorkerHeartbeat) on its worker subject; resolves when the stream stored it. */
  publishForWorker(workerId: string, event: OutgoingEvent): Promise<void>;
  close(): Promise<void>;
}

/** JetStream's de-duplication header: a message id seen within the stream's duplicate window is stored once. */
const MSG_ID_HEADER = "Nats-Msg-Id";

interface Outgoing {
  token: string;
  subject: string;
  data: Uint8Array;
  reply: string;
  headers: MsgHdrs;
}

interface Pending {
  resolve(): void;
  reject(error: Error): void;
  deadline: number;
}

/**
 * Connects, makes sure the audit stream exists as configured, and returns a publisher.
 *
 * Publishes are pipelined: each is a plain NATS publish with a reply subject under one inbox subscription, and the
 * stream's acknowledgement (a JSON PubAck, or an error) settles it; every session's events are in flight at once, and
 * what is published in one turn of the event loop leaves in one socket write. This is what JetStream's publish does, without a
 * per-request subscription entry, timer and error object (a third of the proxy's CPU per statement under load when
 * measured with @nats-io/jetstream's publish). Time-outs are swept by one timer.
 *
 * While the client is disconnected, publishes fail at once (a publish sent into a dropped connection would only time
 * out, even after the reconnect), and those waiting for an ack fail too; the client keeps reconnecting, and
 * publishing works again as soon as it is back.
 */
export async function createAuditPublisher(options: AuditPublisherOptions): Promise<AuditPublisher> {
  const nc = await connect({
    servers: options.servers,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    name: "agentgate-proxy",
    noAsyncTraces: true,
  });
  const pending = new Map<string, Pending>();
  const failAll = (error: BusError) => {
    for (const p of pending.values()) p.reject(error);
    pending.clear();
  };
  let connected = true;
  (async () => {
    for await (const status of nc.status()) {
      if (status.type === "disconnect") {
        connected = false;
        failAll(new BusError("disconnected", "the audit bus connection dropped before the event was acknowledged"));
      } else if (status.type === "reconnect") connected = true;
      options.onStatus?.(status);
    }
  })().catch(() => undefined);
  try {
    await ensureAuditStream(await jetstreamManager(nc), { replicas: options.replicas ?? 1 });
  } catch (error) {
    await nc.close();
    throw error;
  }

  const inbox = createInbox();
  const prefixLength = inbox.length + 1;
  nc.subscribe(`${inbox}.*`, {
    callback: (error, msg) => {
      if (error !== null) {
        failAll(new BusError("not_stored", `the audit acknowledgement subscription failed: ${error.message}`));
        return;
      }
      const token = msg.subject.slice(prefixLength);
      const p = pending.get(token);
      if (p === undefined) return; // timed out meanwhile
      pending.delete(token);
      const problem = ackProblem(msg);
      if (problem === undefined) p.resolve();
      else p.reject(new BusError("not_stored", problem));
    },
  });

  // Deadlines grow with insertion order (one timeout for all), so expired entries are always at the front.
  const sweeper = setInterval(
    () => {
      const now = performance.now();
      for (const [token, p] of pending) {
        if (p.deadline > now) break;
        pending.delete(token);
        p.reject(
          new BusError("not_stored", `the audit bus did not acknowledge the event within ${options.ackTimeoutMs} ms`),
        );
      }
    },
    Math.max(5, Math.min(100, options.ackTimeoutMs / 4)),
  );
  sweeper.unref();

  // Publishes wait for the end of this turn of the event loop and then go together: the client writes what one
  // synchronous run publishes as one socket write, so the sessions served in one turn share a write (and the
  // server's wake-up) instead of each paying for one.
  let outbox: Outgoing[] = [];
  const sendOutbox = () => {
    const sending = outbox;
    outbox = [];
    for (const o of sending) {
      if (!pending.has(o.token)) continue; // failed meanwhile (disconnect)
      try {
        nc.publish(o.subject, o.data, { reply: o.reply, headers: o.headers });
      } catch (error) {
        const p = pending.get(o.token)!;
        pending.delete(o.token);
        p.reject(new BusError("not_stored", "the audit event could not be sent", { cause: error }));
      }
    }
  };

  let next = 0;
  const send = (subject: string, events: readonly OutgoingEvent[]): Promise<void> => {
    if (!connected || nc.isClosed()) {
      return Promise.reject(new BusError("disconnected", "the audit bus is unreachable (reconnecting)"));
    }
    const { typeName, data } = messageOfEvents(events);
    const token = (next++).toString(36);
    const h = headers();
    h.set(TYPE_HEADER, typeName);
    h.set(MSG_ID_HEADER, events.at(-1)!.eventId);
    return new Promise<void>((resolve, reject) => {
      pending.set(token, { resolve, reject, deadline: performance.now() + options.ackTimeoutMs });
      outbox.push({ token, subject, data, reply: `${inbox}.${token}`, headers: h });
      if (outbox.length === 1) setImmediate(sendOutbox);
    });
  };
  return {
    publish(sessionId, events) {
      try {
        return send(auditSubject(sessionId), events);
      } catch (error) {
        return Promise.reject(error);
      }
    },
    publishForWorker(workerId, event) {
      try {
        return send(workerSubject(workerId), [event]);
      } catch (error) {
        return Promise.reject(error);
      }
    },
    async close() {
      // Events still waiting for their ack (a session's end, a statement's outcome) get them before the connection
      // goes. Neither wait is unbounded: on shutdown the server may already be gone (the demo's Ctrl-C stops it too),
      // and a drain would then reconnect forever.
      const deadline = performance.now() + options.ackTimeoutMs;
      while (pending.size > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      clearInterval(sweeper);
      failAll(new BusError("disconnected", "the audit publisher closed before the event was acknowledged"));
      const timeout = () => new Promise((resolve) => setTimeout(resolve, options.ackTimeoutMs).unref());
      if (connected) await Promise.race([nc.drain().catch(() => undefined), timeout()]);
      if (!nc.isClosed()) await nc.close();
    },
  };
}

/** Why a stream acknowledgement is not a successful store, or undefined when it is. */
function ackProblem(msg: Msg): string | undefined {
  const h = msg.headers;
  if (h?.hasError) {
    // 503 No Responders: no stream captures the subject (it was removed, or the server has no JetStream).
    return h.code === 503
      ? "no JetStream stream captures the audit subject"
      : `the audit bus refused the event: ${h.code} ${h.description}`;
  }
  let ack: { stream?: unknown; seq?: unknown; error?: { code?: number; description?: string } };
  try {
    ack = msg.json();
  } catch {
    return "the audit bus answered with something that is not a JetStream acknowledgement";
  }
  if (ack.error !== undefined) {
    return `the audit stream refused the event: ${ack.error.description ?? "no description"} (${ack.error.code ?? "?"})`;
  }
  if (ack.stream !== AUDIT_STREAM || typeof ack.seq !== "number") {
    return "the audit bus answered with something that is not an acknowledgement from the audit stream";
  }
  return undefined;
}
