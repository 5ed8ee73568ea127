import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, it } from "node:test";
import { auditSubject, workerSubject } from "@agentgate/bus";
import { SessionStartedSchema, WorkerHeartbeatSchema } from "@agentgate/events";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { toStoreEvents } from "./to-store-event.ts";

const HEARTBEAT = WorkerHeartbeatSchema.typeName;
const heartbeat = (workerId: string) =>
  toBinary(
    WorkerHeartbeatSchema,
    create(WorkerHeartbeatSchema, {
      meta: { eventId: randomUUID(), occurredAt: timestampNow(), workerId },
      intervalMs: 10_000,
      openSessions: 2,
    }),
  );

describe("bus messages to event store events: workers' own subjects", () => {
  it("given a heartbeat on its worker's subject, then it goes to the worker's stream", () => {
    const mapped = toStoreEvents(workerSubject("gw.example.com:7"), HEARTBEAT, heartbeat("gw.example.com:7"));
    assert.equal(mapped.ok && mapped.stream, "worker-gw_example_com:7");
    assert.equal(mapped.ok && mapped.events.length, 1);
  });

  it("given a heartbeat naming another worker than its subject, then it is refused for good", () => {
    const mapped = toStoreEvents(workerSubject("worker-a"), HEARTBEAT, heartbeat("worker-b"));
    assert.deepEqual(mapped, { ok: false, reason: "meta.worker_id is not the subject's worker" });
  });

  it("given a session's event on a worker subject, then it is refused for good", () => {
    const sessionId = randomUUID();
    const started = toBinary(
      SessionStartedSchema,
      create(SessionStartedSchema, {
        meta: { eventId: randomUUID(), occurredAt: timestampNow(), sessionId, workerId: "worker-a" },
      }),
    );
    const mapped = toStoreEvents(workerSubject("worker-a"), SessionStartedSchema.typeName, started);
    assert.deepEqual(mapped, { ok: false, reason: "agentgate.v1.SessionStarted on a worker subject" });
  });

  it("given a heartbeat on a session's subject, then it is refused (it names no session)", () => {
    const mapped = toStoreEvents(auditSubject(randomUUID()), HEARTBEAT, heartbeat("worker-a"));
    assert.deepEqual(mapped, { ok: false, reason: "meta.session_id is not the subject's session" });
  });
});
