import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { EventBatchSchema, StatementReceivedSchema } from "@agentgate/events";
import { type NatsInstance, startNats } from "@agentgate/testkit";
import { create, toBinary } from "@bufbuild/protobuf";
import { jetstream, jetstreamManager, RetentionPolicy, StorageType } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import {
  AUDIT_STREAM,
  auditSubject,
  BATCH_TYPE,
  BusError,
  decodeEvent,
  EVENT_TYPES,
  ensureAuditStream,
  eventsOfMessage,
  messageOfEvents,
  POLICY_SUBJECT,
  sessionIdOfSubject,
  storeStreamOfSubject,
  workerSubject,
  workerToken,
  workerTokenOfSubject,
} from "./index.ts";
import { publishEvent, testSession } from "./testing/index.ts";

describe("the audit bus contract", { timeout: 60_000 }, () => {
  // A private server: other test files use the run's shared one, and this file creates the one audit stream.
  let nats: NatsInstance;
  let nc: NatsConnection;
  before(async () => {
    nats = await startNats();
    nc = await connect({ servers: nats.url });
  });
  after(async () => {
    await nc?.close();
    await nats?.stop();
  });

  it("creates the stream as the contract says, and accepts it on the next start", async () => {
    const jsm = await jetstreamManager(nc);
    const created = await ensureAuditStream(jsm, { replicas: 1 });
    assert.deepEqual(created.config.subjects, ["agentgate.audit.>"]);
    assert.equal(created.config.storage, StorageType.File);
    assert.equal(created.config.retention, RetentionPolicy.Limits);
    assert.equal(created.config.deny_delete, true);
    assert.equal(created.config.deny_purge, true);
    assert.equal(created.config.duplicate_window, 120e9);
    assert.equal(created.config.num_replicas, 1);
    const again = await ensureAuditStream(jsm, { replicas: 1 });
    assert.equal(again.config.name, AUDIT_STREAM);
  });

  it("refuses an existing stream that breaks the contract, naming what differs", async () => {
    const jsm = await jetstreamManager(nc);
    await ensureAuditStream(jsm, { replicas: 1 });
    await assert.rejects(ensureAuditStream(jsm, { replicas: 3 }), (error: unknown) => {
      assert.ok(error instanceof BusError);
      assert.equal(error.code, "stream_mismatch");
      assert.match(error.message, /num_replicas 1 \(wanted 3\)/);
      return true;
    });
    await assert.rejects(ensureAuditStream(jsm, { replicas: 1, maxAgeMs: 86_400_000 }), /max_age 0s \(wanted 86400s\)/);
  });

  it("keeps events: the API can neither delete nor purge them", async () => {
    const jsm = await jetstreamManager(nc);
    await ensureAuditStream(jsm, { replicas: 1 });
    const session = testSession();
    const ack = await publishEvent(jetstream(nc), session.started());
    await assert.rejects(jsm.streams.deleteMessage(AUDIT_STREAM, ack.seq), /delete/i);
    await assert.rejects(jsm.streams.purge(AUDIT_STREAM), /purge/i);
    assert.ok((await jsm.streams.getMessage(AUDIT_STREAM, { seq: ack.seq })) !== null);
  });

  it("de-duplicates a re-published event by its event id", async () => {
    const jsm = await jetstreamManager(nc);
    await ensureAuditStream(jsm, { replicas: 1 });
    const js = jetstream(nc);
    const event = testSession().started();
    const first = await publishEvent(js, event);
    const second = await publishEvent(js, event);
    assert.equal(first.duplicate, false);
    assert.equal(second.duplicate, true);
    assert.equal(second.seq, first.seq);
  });

  it("maps sessions to subjects and subjects to event store streams", () => {
    const id = randomUUID();
    assert.equal(auditSubject(id), `agentgate.audit.session.${id}`);
    assert.equal(sessionIdOfSubject(auditSubject(id)), id);
    assert.equal(storeStreamOfSubject(auditSubject(id)), `session-${id}`);
    assert.equal(storeStreamOfSubject(POLICY_SUBJECT), "policy");
    assert.equal(storeStreamOfSubject("agentgate.audit.other.x"), undefined);
    assert.equal(storeStreamOfSubject("agentgate.audit.session.a.b"), undefined);
    for (const bad of ["", "a.b", "a*", ">", "a b", "x".repeat(129)]) {
      assert.throws(() => auditSubject(bad), { name: "BusError", code: "invalid_subject" });
    }
  });

  it("maps workers to subjects (host names' dots made safe) and to event store streams", () => {
    assert.equal(workerSubject("vm-1:4242"), "agentgate.audit.worker.vm-1:4242");
    assert.equal(workerSubject("gw.example.com:7"), "agentgate.audit.worker.gw_example_com:7");
    assert.equal(workerToken("a b*c>d"), "a_b_c_d");
    assert.equal(workerTokenOfSubject(workerSubject("gw.example.com:7")), "gw_example_com:7");
    assert.equal(storeStreamOfSubject(workerSubject("gw.example.com:7")), "worker-gw_example_com:7");
    assert.equal(workerSubject("w".repeat(300)).length, "agentgate.audit.worker.".length + 128);
    assert.equal(workerTokenOfSubject("agentgate.audit.worker.a.b"), undefined);
    assert.throws(() => workerSubject(""), { name: "BusError", code: "invalid_subject" });
  });

  it("decodes every registered type by its header, and refuses unknown types and bad bytes", () => {
    for (const [name, schema] of Object.entries(EVENT_TYPES)) assert.equal(schema.typeName, name);
    const session = testSession();
    const received = session.received({ sql: "SELECT 1" });
    const decoded = decodeEvent("agentgate.v1.StatementReceived", toBinary(StatementReceivedSchema, received));
    assert.equal(decoded.$typeName, "agentgate.v1.StatementReceived");
    assert.equal(decoded.meta?.eventId, received.meta?.eventId);
    assert.throws(() => decodeEvent("agentgate.v1.Nope", new Uint8Array()), { code: "unknown_type" });
    assert.throws(() => decodeEvent("agentgate.v1.StatementReceived", Uint8Array.of(0x0a, 0x05, 0x01)), {
      code: "malformed_event",
    });
    const withoutMeta = toBinary(StatementReceivedSchema, create(StatementReceivedSchema, { sql: "SELECT 1" }));
    assert.throws(() => decodeEvent("agentgate.v1.StatementReceived", withoutMeta), /without meta/);
  });

  it("carries several events of a session as one EventBatch message, and refuses malformed batches", () => {
    const session = testSession();
    const events = [session.received({ sql: "SELECT 1" }), session.received({ sql: "SELECT 2" })].map((e) => ({
      typeName: e.$typeName,
      data: toBinary(StatementReceivedSchema, e),
    }));
    assert.equal(messageOfEvents(events.slice(0, 1)), events[0], "one event travels as itself");
    const message = messageOfEvents(events);
    assert.equal(message.typeName, BATCH_TYPE);
    const expected = toBinary(
      EventBatchSchema,
      create(EventBatchSchema, { events: events.map((e) => ({ type: e.typeName, data: e.data })) }),
    );
    assert.deepEqual(Buffer.from(message.data), Buffer.from(expected), "what toBinary would write");
    const unpacked = eventsOfMessage(message.typeName, message.data);
    assert.deepEqual(
      unpacked.map((e) => decodeEvent(e.typeName, e.data).meta?.eventId),
      events.map((e) => decodeEvent(e.typeName, e.data).meta?.eventId),
    );
    assert.deepEqual(eventsOfMessage("agentgate.v1.StatementReceived", events[0]!.data), [events[0]]);
    assert.throws(() => messageOfEvents([]), RangeError);
    assert.throws(() => eventsOfMessage(BATCH_TYPE, new Uint8Array()), {
      code: "malformed_event",
      message: /without events/,
    });
    assert.throws(() => eventsOfMessage(BATCH_TYPE, Uint8Array.of(0x0a, 0x05, 0x01)), { code: "malformed_event" });
    const nested = messageOfEvents([message, events[0]!]);
    assert.throws(() => eventsOfMessage(nested.typeName, nested.data), { code: "malformed_event", message: /inside/ });
  });
});
