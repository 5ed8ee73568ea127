import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { headers } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { auditSubject, ensureAuditStream, TYPE_HEADER } from "./contract.ts";
import { BusError } from "./errors.ts";

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

/** Publishes audit events to JetStream and resolves only once the stream has stored them. */
export interface AuditPublisher {
  publish(sessionId: string, typeName: string, eventId: string, data: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

/**
 * Connects, makes sure the audit stream exists as configured, and returns a publisher. Publishes are not serialised:
 * every session's events are in flight at once and acknowledged independently (pipelined acks). While the client is
 * disconnected, publishes fail at once (a publish sent into a dropped connection would only time out, even after the
 * reconnect); the client keeps reconnecting, and publishing works again as soon as it is back.
 */
export async function createAuditPublisher(options: AuditPublisherOptions): Promise<AuditPublisher> {
  const nc = await connect({
    servers: options.servers,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    name: "agentgate-proxy",
    // nats.js builds an Error per request for async stack traces; that was a fifth of the proxy's CPU under load.
    noAsyncTraces: true,
  });
  let connected = true;
  (async () => {
    for await (const status of nc.status()) {
      if (status.type === "disconnect") connected = false;
      else if (status.type === "reconnect") connected = true;
      options.onStatus?.(status);
    }
  })().catch(() => undefined);
  await ensureAuditStream(await jetstreamManager(nc), { replicas: options.replicas ?? 1 });
  const js = jetstream(nc);
  const inFlight = new Set<Promise<unknown>>();
  return {
    async publish(sessionId, typeName, eventId, data) {
      if (!connected) throw new BusError("disconnected", "the audit bus is unreachable (reconnecting)");
      const h = headers();
      h.set(TYPE_HEADER, typeName);
      const ack = js.publish(auditSubject(sessionId), data, {
        msgID: eventId,
        headers: h,
        timeout: options.ackTimeoutMs,
      });
      inFlight.add(ack);
      try {
        await ack;
      } finally {
        inFlight.delete(ack);
      }
    },
    async close() {
      // Events still waiting for their ack (a session's end, a statement's outcome) get them before the connection
      // goes: draining first would close the reply subscription under them. Neither wait is unbounded: on shutdown
      // the server may already be gone (the demo's Ctrl-C stops it too), and a drain would then reconnect forever.
      const timeout = () => new Promise((resolve) => setTimeout(resolve, options.ackTimeoutMs).unref());
      await Promise.race([Promise.allSettled([...inFlight]), timeout()]);
      if (connected) await Promise.race([nc.drain().catch(() => undefined), timeout()]);
      if (!nc.isClosed()) await nc.close();
    },
  };
}
