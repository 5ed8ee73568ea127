import { type AuditEvent, auditSubject, EVENT_TYPES } from "@agentgate/bus";
import { publishEvent } from "@agentgate/bus/testing";
import type { EventStore, RecordedEvent } from "@agentgate/eventstore";
import { type DescMessage, toBinary } from "@bufbuild/protobuf";
import type { JetStreamClient } from "@nats-io/jetstream";
import { toStoreEvents } from "../ingester/to-store-event.ts";

/** Polls `check` until it returns a value other than undefined/false; fails with `what` after `timeoutMs`. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * Publishes events with up to `concurrency` publishes in flight (each session's events stay in order). A publish
 * that gets no ack is sent again with the same Nats-Msg-Id, as a publisher should: JetStream keeps it once.
 */
export async function publishAll(js: JetStreamClient, events: AuditEvent[], concurrency = 64): Promise<void> {
  const bySession = new Map<string, AuditEvent[]>();
  for (const event of events) {
    const key = event.meta?.sessionId ?? "";
    bySession.set(key, [...(bySession.get(key) ?? []), event]);
  }
  const queues = [...bySession.values()];
  const lanes = Math.max(1, Math.min(concurrency, queues.length));
  await Promise.all(
    Array.from({ length: lanes }, async (_, lane) => {
      for (let q = lane; q < queues.length; q += lanes) {
        for (const event of queues[q]!) await publishWithRetry(js, event);
      }
    }),
  );
}

export async function collectAll(store: EventStore): Promise<RecordedEvent[]> {
  const events: RecordedEvent[] = [];
  for await (const event of store.readAll()) events.push(event);
  return events;
}

async function publishWithRetry(js: JetStreamClient, event: AuditEvent, attempts = 10): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await publishEvent(js, event);
      return;
    } catch (error) {
      if (attempt === attempts) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** Appends events to the store exactly as the ingester would from the bus, in order, one stream per session. */
export async function appendAsIngested(store: EventStore, events: AuditEvent[]): Promise<void> {
  for (const event of events) {
    const data = toBinary(EVENT_TYPES[event.$typeName] as DescMessage, event);
    const mapped = toStoreEvents(auditSubject(event.meta!.sessionId), event.$typeName, data);
    if (!mapped.ok) throw new Error(mapped.reason);
    await store.append(mapped.stream, mapped.events);
  }
}
