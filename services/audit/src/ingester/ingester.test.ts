import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { Writable } from "node:stream";
import { after, afterEach, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  AUDIT_STREAM,
  auditSubject,
  EVENT_TYPES,
  ensureAuditStream,
  messageOfEvents,
  TYPE_HEADER,
} from "@agentgate/bus";
import { publishEvent, testSession } from "@agentgate/bus/testing";
import { SessionEndReason, StatementReceivedSchema } from "@agentgate/events";
import type { PostgresEventStore, RecordedEvent } from "@agentgate/eventstore";
import { type NatsInstance, startNats } from "@agentgate/testkit";
import { type DescMessage, fromBinary, toBinary } from "@bufbuild/protobuf";
import { type JetStreamClient, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, headers, type NatsConnection } from "@nats-io/transport-node";
import { pino } from "pino";
import { collectAll, eventually, publishAll } from "../testing/helpers.ts";
import { type StoreDatabase, storeDatabase } from "../testing/store-database.ts";
import { createIngester, type Ingester, type IngesterOptions } from "./ingester.ts";

const RECEIVED = "agentgate.v1.StatementReceived";

/** 1,000 StatementReceived events from 10 sessions, interleaved as concurrent sessions publish them. */
function statementLoad(sessions = 10, perSession = 100) {
  const all = Array.from({ length: sessions }, () => {
    const session = testSession();
    return Array.from({ length: perSession }, (_, i) => session.received({ sql: `SELECT ${i}` }));
  });
  return { events: all.flat(), streams: all.map((events) => `session-${events[0]!.meta!.sessionId}`) };
}

const sequenceOf = (event: RecordedEvent) => Number(fromBinary(StatementReceivedSchema, event.data).sequence);

/** Each of `streams` holds its StatementReceived events once each, in sequence order 1..perSession. */
function assertExactlyOnceInOrder(events: RecordedEvent[], streams: string[], perSession: number) {
  const received = events.filter((event) => event.type === RECEIVED && streams.includes(event.stream));
  assert.equal(received.length, streams.length * perSession);
  assert.equal(new Set(received.map((event) => event.eventId)).size, received.length, "no duplicates");
  for (const stream of streams) {
    assert.deepEqual(
      received.filter((event) => event.stream === stream).map(sequenceOf),
      Array.from({ length: perSession }, (_, i) => i + 1),
      `${stream} in order`,
    );
  }
}

describe("the audit ingester", { timeout: 180_000 }, () => {
  let nats: NatsInstance;
  let nc: NatsConnection;
  let js: JetStreamClient;
  let database: StoreDatabase;
  const running: Ingester[] = [];
  const stores: PostgresEventStore[] = [];
  const level = process.env.AGENTGATE_TEST_LOG ?? "silent";

  const openStore = async () => {
    const store = await database.openStore();
    stores.push(store);
    return store;
  };
  const startIngester = async (options: Partial<IngesterOptions> & Pick<IngesterOptions, "eventStore">) => {
    const ingester = createIngester({
      natsServers: nats.url,
      ackWaitMs: 2000,
      backoff: { initialMs: 50, maxMs: 500 },
      logger: pino({ level }, pino.destination(2)),
      ...options,
    });
    running.push(ingester);
    await ingester.start();
    return ingester;
  };
  /** A new durable per test: each test reads the stream from its start into its own store. */
  let durables = 0;
  const durable = () => `test-${++durables}`;

  before(async () => {
    // A private server: these tests kill it, and consume the whole audit stream.
    [nats, database] = await Promise.all([startNats(), storeDatabase()]);
    nc = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    js = jetstream(nc, { timeout: 2000 });
    await ensureAuditStream(await jetstreamManager(nc), { replicas: 1 });
  });
  afterEach(async () => {
    for (const child of children.splice(0)) child.kill("SIGKILL");
    await Promise.allSettled(running.splice(0).map((ingester) => ingester.stop()));
    await Promise.allSettled(stores.splice(0).map((store) => store.close()));
  });
  after(async () => {
    await nc?.close();
    await Promise.allSettled([nats?.stop(), database?.drop()]);
  });

  it("stores a session's events in order with the bytes the proxy published, and a redelivery changes nothing", async () => {
    const store = await openStore();
    const session = testSession();
    const received = session.received({ sql: "SELECT name FROM customers" });
    const events = [
      session.started(),
      received,
      session.completed(received),
      session.ended(SessionEndReason.CLIENT_CLOSED),
    ];
    // The first two as messages of their own, the last two as one EventBatch, as the proxy sends an outcome with
    // the session's next event.
    await publishAll(js, events.slice(0, 2));
    const batch = messageOfEvents(
      events
        .slice(2)
        .map((e) => ({ typeName: e.$typeName, data: toBinary(EVENT_TYPES[e.$typeName] as DescMessage, e) })),
    );
    const h = headers();
    h.set(TYPE_HEADER, batch.typeName);
    await js.publish(auditSubject(session.sessionId), batch.data, { headers: h });
    await startIngester({ eventStore: store, durable: durable() });

    const stored = await eventually("the session is stored", async () => {
      const all = await collectAll(store);
      return all.length === events.length && all;
    });
    assert.deepEqual(
      stored.map((event) => [event.stream, event.revision, event.type, event.eventId]),
      events.map((event, i) => [`session-${session.sessionId}`, BigInt(i), event.$typeName, event.meta?.eventId]),
    );
    for (const [i, event] of events.entries()) {
      assert.deepEqual(stored[i]!.data, toBinary(EVENT_TYPES[event.$typeName] as DescMessage, event));
      assert.equal(
        stored[i]!.occurredAt.getTime(),
        Number(event.meta!.occurredAt!.seconds) * 1000 + event.meta!.occurredAt!.nanos / 1e6,
      );
    }

    // Every message delivered again (a second durable reads the whole stream): the store skips them all.
    const again = await startIngester({ eventStore: store, durable: durable() });
    await eventually("the second durable caught up", () => again.stats().stored >= events.length);
    assert.equal((await collectAll(store)).length, events.length);
  });

  it("terminates what it can never store, counting and logging it by type and subject only", async () => {
    const store = await openStore();
    const lines: string[] = [];
    const logger = pino(
      { level: "error" },
      new Writable({
        write(chunk, _encoding, done) {
          lines.push(String(chunk));
          done();
        },
      }),
    );
    const session = testSession();
    const secret = "4111111111111111";
    const raw = (subject: string, type: string | undefined, data: Uint8Array) => {
      const h = headers();
      if (type !== undefined) h.set(TYPE_HEADER, type);
      return js.publish(subject, data, { headers: h });
    };
    await raw(auditSubject(session.sessionId), RECEIVED, new TextEncoder().encode(`\x0a\x7f${secret}`));
    await raw(auditSubject(session.sessionId), "agentgate.v1.Unknown", new Uint8Array());
    await raw(
      auditSubject(session.sessionId),
      undefined,
      toBinary(StatementReceivedSchema, session.received({ sql: secret })),
    );
    await raw(
      auditSubject("another-session"),
      RECEIVED,
      toBinary(StatementReceivedSchema, session.received({ sql: secret })),
    );
    // A batch is stored whole or not at all: one bad entry makes the message poison.
    const good = toBinary(StatementReceivedSchema, session.received({ sql: secret }));
    const badBatch = messageOfEvents([
      { typeName: RECEIVED, data: good },
      { typeName: RECEIVED, data: new TextEncoder().encode(`\x0a\x7f${secret}`) },
    ]);
    await raw(auditSubject(session.sessionId), badBatch.typeName, badBatch.data);
    await publishEvent(js, session.started());

    const ingester = await startIngester({ eventStore: store, durable: durable(), logger });
    const mine = async () =>
      (await collectAll(store)).filter((event) => event.stream === `session-${session.sessionId}`);
    await eventually("the good event is stored", async () => (await mine()).length === 1);
    await eventually("the bad ones are terminated", () => ingester.stats().terminated === 5);
    assert.equal(lines.length, 5);
    for (const line of lines) {
      const entry = JSON.parse(line);
      assert.match(entry.subject, /^agentgate\.audit\.session\./);
      assert.equal(entry.msg, "audit event cannot be stored: terminated");
      assert.ok(!line.includes(secret), "no content in the log");
    }
    assert.deepEqual(
      lines.map((line) => JSON.parse(line).reason),
      [
        `${RECEIVED}: premature EOF`,
        'unknown event type "agentgate.v1.Unknown"',
        "no Agentgate-Type header",
        "meta.session_id is not the subject's session",
        `batch entry 1: ${RECEIVED}: premature EOF`,
      ],
    );
    // Not delivered again: nothing is pending on the consumer.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    assert.equal(ingester.stats().terminated, 5);
  });

  it("killed (SIGKILL) and restarted mid-load: exactly 1,000 statements, none twice, each session in order", async () => {
    const store = await openStore();
    const started = Date.now();
    const load = statementLoad();
    const d = durable();
    const env = {
      ...process.env,
      INGESTER_OPTIONS: JSON.stringify({
        natsUrl: nats.url,
        storeUrl: database.writerUrl,
        schema: store.schema,
        batch: 64,
        ackWaitMs: 3000,
        durable: d,
      }),
    };
    const publishing = publishAll(js, load.events);
    let child = await startChild(env);
    await eventually("some statements are stored", async () => (await count(store, load.streams)) >= 250, 30_000);
    child.kill("SIGKILL");
    await once(child, "exit");
    const atKill = await count(store, load.streams);
    child = await startChild(env);
    await publishing;
    await eventually("all statements are stored", async () => (await count(store, load.streams)) >= 1000, 60_000);
    child.kill("SIGTERM");
    await once(child, "exit");
    assertExactlyOnceInOrder(await collectAll(store), load.streams, 100);
    const info = await (await jetstreamManager(nc)).consumers.info(AUDIT_STREAM, d);
    assert.equal(info.num_ack_pending, 0);
    assert.equal(info.num_pending, 0);
    process.stderr.write(`# killed at ${atKill}/1000 stored; all 1000 stored after ${Date.now() - started} ms\n`);
  });

  it("recovers when nats-server is killed and started again while it runs", async () => {
    const store = await openStore();
    const started = Date.now();
    const load = statementLoad();
    const ingester = await startIngester({ eventStore: store, durable: durable(), batch: 32 });
    await publishAll(js, load.events.slice(0, 500));
    await eventually("some statements are stored", async () => (await count(store, load.streams)) >= 100);
    await nats.kill();
    await new Promise((resolve) => setTimeout(resolve, 500));
    await nats.start();
    await publishAll(js, load.events.slice(500));
    await eventually("all statements are stored", async () => (await count(store, load.streams)) >= 1000, 60_000);
    assertExactlyOnceInOrder(await collectAll(store), load.streams, 100);
    process.stderr.write(
      `# nats-server killed and restarted; all 1000 stored after ${Date.now() - started} ms, ` +
        `${ingester.stats().realignments} realignment(s)\n`,
    );
  });

  it("while the store is down acknowledges nothing, then stores everything once it is back", async () => {
    const store = await openStore();
    const d = durable();
    const session = testSession();
    const ingester = await startIngester({ eventStore: store, durable: d });
    const jsm = await jetstreamManager(nc);
    await eventually("the durable caught up with earlier tests", async () => {
      const info = await jsm.consumers.info(AUDIT_STREAM, d);
      return info.num_pending === 0 && info.num_ack_pending === 0;
    });
    const streams = [`session-${session.sessionId}`];
    await database.takeStoreDown();
    const events = Array.from({ length: 200 }, (_, i) => session.received({ sql: `SELECT ${i}` }));
    await publishAll(js, events);
    await eventually("appends fail", () => ingester.stats().storeFailures >= 3);
    const info = await jsm.consumers.info(AUDIT_STREAM, d);
    assert.equal(info.num_ack_pending + info.num_pending, 200, "every event still waits in JetStream");
    await database.bringStoreUp();
    await eventually("everything is stored", async () => (await count(store, streams)) === 200);
    await eventually("and acknowledged", async () => {
      const after = await jsm.consumers.info(AUDIT_STREAM, d);
      return after.num_ack_pending === 0 && after.num_pending === 0;
    });
    assertExactlyOnceInOrder(await collectAll(store), streams, 200);
  });

  async function count(store: PostgresEventStore, streams: string[]): Promise<number> {
    const rows = await database.admin<{ n: string }>(
      `SELECT count(*) AS n FROM ${store.schema}.events WHERE stream = ANY($1)`,
      [streams],
    );
    return Number(rows[0]!.n);
  }
});

const children: ChildProcess[] = [];

async function startChild(env: NodeJS.ProcessEnv): Promise<ChildProcess> {
  const script = fileURLToPath(new URL("../testing/ingester-process.ts", import.meta.url));
  const child = spawn(process.execPath, ["--import", "tsx", script], { env, stdio: ["ignore", "pipe", "inherit"] });
  children.push(child);
  const [chunk] = (await Promise.race([once(child.stdout!, "data"), once(child, "exit")])) as [Buffer | number];
  if (String(chunk) !== "ready\n") throw new Error(`the ingester process did not start: ${String(chunk)}`);
  return child;
}
