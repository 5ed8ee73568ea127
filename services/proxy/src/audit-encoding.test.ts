import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Effect, EventMetaSchema, StatementCompletedSchema, StatementReceivedSchema } from "@agentgate/events";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  type CompletedFields,
  encodeStatementCompleted,
  encodeStatementReceived,
  type ReceivedFields,
} from "./audit-encoding.ts";

const sessionMeta = toBinary(
  EventMetaSchema,
  create(EventMetaSchema, {
    principal: { subject: "agent-7", groups: ["agents", "ünïcode"], issuer: "https://idp.example", clientId: "c" },
    target: "app",
    sessionId: "0b5c8d3e-5f0e-4b7a-9c1d-2e3f4a5b6c7d",
    workerId: "worker-1",
  }),
);
const meta = (eventId: string, occurredAtMs: number) => ({
  eventId,
  occurredAt: timestampFromMs(occurredAtMs),
  principal: {
    subject: "agent-7",
    groups: ["agents", "ünïcode"],
    issuer: "https://idp.example",
    clientId: "c",
  },
  target: "app",
  sessionId: "0b5c8d3e-5f0e-4b7a-9c1d-2e3f4a5b6c7d",
  workerId: "worker-1",
});

const times = [1_795_268_506_492, 1_795_268_506_000, 1_000, 999];

describe("audit events encoded field by field", () => {
  const received: ReceivedFields[] = [
    {
      statementId: "s1",
      sequence: 1n,
      sql: "SELECT 1",
      parameters: [],
      protocol: "simple",
      fingerprint: "",
      statements: [],
      effect: Effect.UNSPECIFIED,
      rule: "",
      reason: "",
      policyRevision: "",
    },
    {
      statementId: "7c9e6679-7425-40de-944b-e07fc1f90ae7",
      sequence: 2n ** 40n,
      sql: "DELETE FROM orders WHERE note = 'naïve ☃' AND id = $1",
      parameters: ["", "5", "base64:AAEC", "é"],
      protocol: "extended",
      fingerprint: "a1b2c3d4e5f60718",
      statements: [
        {
          class: "write",
          classes: ["read", "write"],
          reads: ["orders"],
          writes: ["public.orders"],
          functions: [],
          fingerprint: "ffee",
          protectedSetting: "",
        },
        {
          class: "privilege",
          classes: [],
          reads: [],
          writes: [],
          functions: ["set_config", "lower"],
          fingerprint: "",
          protectedSetting: "role",
        },
      ],
      effect: Effect.REQUIRE_APPROVAL,
      rule: "dml-needs-approval",
      reason: "deletes wait for a DBA",
      policyRevision: "8aa37975dc74",
    },
    {
      statementId: "s3",
      sequence: 0n,
      sql: "x".repeat(70_000),
      parameters: ["y".repeat(300)],
      protocol: "simple",
      fingerprint: "",
      statements: [],
      effect: Effect.DENY,
      rule: "r",
      reason: "",
      policyRevision: "rev",
    },
  ];
  for (const [i, fields] of received.entries()) {
    it(`given StatementReceived ${i + 1}, when encoded, then the bytes are toBinary's`, () => {
      for (const at of times) {
        const expected = toBinary(
          StatementReceivedSchema,
          create(StatementReceivedSchema, {
            ...fields,
            parameters: [...fields.parameters],
            statements: fields.statements.map((f) => ({ ...f })),
            meta: meta(`e${i}`, at),
          }),
        );
        const actual = encodeStatementReceived({ eventId: `e${i}`, occurredAtMs: at, sessionMeta }, fields);
        assert.deepEqual(Buffer.from(actual), Buffer.from(expected));
      }
    });
  }

  const completed: CompletedFields[] = [
    { statementId: "s1", status: "ok", commandTag: "SELECT 1", rows: 1n, durationMicros: 412n, sqlstate: "" },
    {
      statementId: "s2",
      status: "error",
      commandTag: "",
      rows: 0n,
      durationMicros: 0n,
      sqlstate: "22P02",
      maskedCells: {},
    },
    {
      statementId: "s3",
      status: "ok",
      commandTag: "SELECT 100000",
      rows: 100_000n,
      durationMicros: 2n ** 33n,
      sqlstate: "",
      maskedCells: { "public.people.ssn": 100_000n, "public.people.email": 0n, row_to_json: 3n },
    },
  ];
  for (const [i, fields] of completed.entries()) {
    it(`given StatementCompleted ${i + 1}, when encoded, then the bytes are toBinary's`, () => {
      for (const at of times) {
        const expected = toBinary(
          StatementCompletedSchema,
          create(StatementCompletedSchema, { ...fields, meta: meta(`c${i}`, at) }),
        );
        const actual = encodeStatementCompleted({ eventId: `c${i}`, occurredAtMs: at, sessionMeta }, fields);
        assert.deepEqual(Buffer.from(actual), Buffer.from(expected));
      }
    });
  }
});
