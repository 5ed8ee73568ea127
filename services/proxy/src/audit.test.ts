import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  AUDIT_STREAM,
  auditSubject,
  BATCH_TYPE,
  decodeEvent,
  EVENT_TYPES,
  eventsOfMessage,
  TYPE_HEADER,
} from "@agentgate/bus";
import {
  type EventMeta,
  SessionEndedSchema,
  SessionStartedSchema,
  StatementCompletedSchema,
  StatementReceivedSchema,
} from "@agentgate/events";
import { type NatsInstance, startNats } from "@agentgate/testkit";
import { type DescMessage, fromBinary, toBinary } from "@bufbuild/protobuf";
import { jetstream } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import pg from "pg";
import { startTestGateway, type TestGateway } from "./testing.ts";

let nats: NatsInstance;
let gw: TestGateway;

before(async () => {
  nats = await startNats();
  gw = await startTestGateway({ proxy: { audit: { nats: nats.url, ackTimeoutMs: 1000 } } });
  const direct = new pg.Client({ connectionString: gw.directUrl });
  await direct.connect();
  await direct.query("CREATE TABLE notes (id int PRIMARY KEY, body text)");
  await direct.end();
});

after(async () => {
  await gw.close();
  await nats.stop();
});

interface Recorded {
  type: string;
  data: Uint8Array;
}

/** Every audit event of one session, in stream order, and how many bus messages carried them. */
async function eventsOf(sessionId: string): Promise<Recorded[] & { messages: number }> {
  const nc = await connect({ servers: nats.url });
  try {
    const js = jetstream(nc);
    // nats-server 2.9 (Debian 12) has no filter_subjects on ordered consumers: read the stream, keep this session's.
    const consumer = await js.consumers.get(AUDIT_STREAM);
    const out = Object.assign([] as Recorded[], { messages: 0 });
    const messages = await consumer.fetch({ max_messages: 10_000, expires: 1000 });
    for await (const m of messages) {
      if (m.subject !== auditSubject(sessionId)) continue;
      out.messages++;
      for (const e of eventsOfMessage(m.headers?.get(TYPE_HEADER) ?? "", m.data)) {
        out.push({ type: e.typeName, data: e.data });
      }
    }
    return out;
  } finally {
    await nc.close();
  }
}

async function sessionIdOf(client: pg.Client): Promise<string> {
  const pid = (await client.query("SELECT pg_backend_pid() AS pid")).rows[0].pid as number;
  assert.ok(pid > 0);
  const mine = gw.proxy.sessions().filter((s) => s.phase === "relay");
  assert.equal(mine.length, 1, "one session open");
  return mine[0]!.id;
}

describe("write-ahead audit on the bus", { timeout: 120_000 }, () => {
  it("records a session's statements in order, each before it ran, with its outcome", async () => {
    const client = new pg.Client({ connectionString: gw.url() });
    await client.connect();
    const sessionId = await sessionIdOf(client);
    for (let i = 1; i <= 18; i++) await client.query(`INSERT INTO notes VALUES (${i}, 'note ${i}')`);
    await client.query("SELECT count(*) FROM notes WHERE id > $1", [5]);
    await client.end();
    await new Promise((r) => setTimeout(r, 300));

    const events = await eventsOf(sessionId);
    assert.equal(events[0]!.type, "agentgate.v1.SessionStarted");
    assert.equal(fromBinary(SessionStartedSchema, events[0]!.data).meta?.sessionId, sessionId);
    const received = events
      .filter((e) => e.type === "agentgate.v1.StatementReceived")
      .map((e) => fromBinary(StatementReceivedSchema, e.data));
    assert.equal(received.length, 20, "pg_backend_pid, 18 inserts and the extended-protocol count");
    assert.deepEqual(
      received.map((r) => Number(r.sequence)),
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
    assert.equal(received[1]!.sql, "INSERT INTO notes VALUES (1, 'note 1')");
    assert.equal(received[19]!.protocol, "extended");
    assert.deepEqual(received[19]!.parameters, ["5"]);
    const completed = events
      .filter((e) => e.type === "agentgate.v1.StatementCompleted")
      .map((e) => fromBinary(StatementCompletedSchema, e.data));
    const byId = new Map(completed.map((c) => [c.statementId, c]));
    const insert = byId.get(received[1]!.statementId)!;
    assert.equal(insert.status, "ok");
    assert.equal(insert.commandTag, "INSERT 0 1");
    assert.equal(byId.get(received[19]!.statementId)?.rows, 1n);
    const ended = events.find((e) => e.type === "agentgate.v1.SessionEnded");
    assert.ok(ended, "the session's end is recorded");
    assert.equal(fromBinary(SessionEndedSchema, ended.data).meta?.sessionId, sessionId);
    // Outcomes ride with the next statement's record: about one bus message per statement, not two.
    assert.equal(events.length, 42, "start, 20 records, 20 outcomes, end");
    assert.ok(events.messages <= 23, `${events.messages} bus messages for 42 events`);
    // The proxy encodes the session's part of each event's meta once; the bytes are what encoding it whole gives.
    for (const e of events) {
      const schema = EVENT_TYPES[e.type as keyof typeof EVENT_TYPES] as DescMessage;
      assert.notEqual(e.type, BATCH_TYPE);
      assert.deepEqual(
        Buffer.from(toBinary(schema, fromBinary(schema, e.data))),
        Buffer.from(e.data),
        `${e.type} is canonically encoded`,
      );
      const meta = (fromBinary(schema, e.data) as { meta?: EventMeta }).meta!;
      assert.equal(meta.sessionId, sessionId);
      assert.equal(meta.target, "app");
      assert.ok(meta.eventId.length === 36 && meta.occurredAt !== undefined);
    }
    const ids = events.map((e) => (decodeEvent(e.type, e.data).meta as EventMeta).eventId);
    assert.equal(new Set(ids).size, 42, "every event has its own id");
  });

  it("refuses statements while the bus cannot acknowledge them, runs nothing, and recovers by itself", async () => {
    const client = new pg.Client({ connectionString: gw.url() });
    await client.connect();
    await client.query("SELECT 1");
    await nats.kill();
    try {
      await assert.rejects(client.query("INSERT INTO notes VALUES (100, 'lost?')"), (e: Error & { code?: string }) => {
        assert.equal(e.code, "57P03");
        assert.match(e.message, /audit log did not confirm/);
        return true;
      });
    } finally {
      await nats.start();
    }
    let recovered = false;
    for (let i = 0; i < 100 && !recovered; i++) {
      try {
        await client.query("INSERT INTO notes VALUES (101, 'after')");
        recovered = true;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    assert.ok(recovered, "the same session works again once the bus is back");
    await client.end();
    const direct = new pg.Client({ connectionString: gw.directUrl });
    await direct.connect();
    const rows = (await direct.query("SELECT id FROM notes WHERE id >= 100 ORDER BY id")).rows.map((r) => r.id);
    await direct.end();
    assert.deepEqual(rows, [101], "the refused statement never reached the target");
  });
});
