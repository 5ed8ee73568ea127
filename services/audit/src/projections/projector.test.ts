import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { testSession } from "@agentgate/bus/testing";
import { Effect, SessionEndReason } from "@agentgate/events";
import type { PostgresEventStore } from "@agentgate/eventstore";
import { pino } from "pino";
import { appendAsIngested } from "../testing/helpers.ts";
import { type StoreDatabase, storeDatabase } from "../testing/store-database.ts";
import { createProjector, type Projector } from "./projector.ts";
import { createReadModel, type ReadModel } from "./read-model.ts";

describe("the read model projections", { timeout: 60_000 }, () => {
  let database: StoreDatabase;
  const closers: (() => Promise<void>)[] = [];
  const logger = pino({ level: process.env.AGENTGATE_TEST_LOG ?? "silent" }, pino.destination(2));
  let schemas = 0;

  before(async () => {
    database = await storeDatabase();
  });
  after(async () => {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    await database?.drop();
  });

  /** A new store, and projectors and a read model on a new read schema of the same database. */
  async function setup(): Promise<{
    store: PostgresEventStore;
    projector: (batchSize?: number) => Projector;
    read: ReadModel;
    schema: string;
  }> {
    const store = await database.openStore();
    const schema = `read_${++schemas}`;
    const read = createReadModel({ connectionString: database.db.url, schema });
    closers.push(
      () => store.close(),
      () => read.close(),
    );
    const projector = (batchSize?: number) => {
      const p = createProjector({ connectionString: database.db.url, schema, eventStore: store, logger, batchSize });
      closers.push(() => p.stop());
      return p;
    };
    return { store, projector, read, schema };
  }

  it("builds a session and its statements: who, where, decisions, outcomes, masked cells", async () => {
    const { store, projector, read } = await setup();
    const started = new Date("2025-03-01T10:00:00.000Z");
    const s = testSession({ subject: "agent-7", groups: ["analysts", "oncall"], target: "app", startedAt: started });
    const start = s.started();
    const select = s.received({
      sql: "SELECT email FROM customers",
      fingerprint: "fp1",
      policyRevision: "r3",
      rule: "reads",
    });
    const drop = s.received({ sql: "DROP TABLE orders", effect: Effect.DENY, rule: "no-ddl", classes: ["ddl"] });
    await appendAsIngested(store, [
      start,
      select,
      s.completed(select, { rows: 5n, commandTag: "SELECT 5", maskedCells: { "public.customers.email": 5n } }),
      drop,
      s.completed(drop, { status: "refused", sqlstate: "42501", rows: 0n, commandTag: "" }),
      s.ended(SessionEndReason.CLIENT_CLOSED),
    ]);
    const p = projector();
    assert.equal(await p.catchUp(), 6n);
    assert.equal(await p.position(), 6n);

    const session = await read.session(s.sessionId);
    assert.ok(session);
    assert.deepEqual(session.principal, {
      subject: "agent-7",
      groups: ["analysts", "oncall"],
      issuer: "https://idp.example.com/",
      clientId: null,
    });
    assert.equal(session.target, "app");
    assert.equal(session.workerId, "proxy-1");
    assert.equal(session.clientAddress, "127.0.0.1:50000");
    assert.equal(session.applicationName, "psql");
    assert.deepEqual(session.startedAt, started);
    assert.equal(session.endReason, "client_closed");
    assert.ok(session.endedAt! > started);
    assert.equal(session.statementCount, 2);

    const statements = await read.statements(s.sessionId);
    assert.deepEqual(
      statements.map((st) => [st.sequence, st.sql, st.effect, st.rule, st.status, st.sqlstate, st.rows, st.classes]),
      [
        [1, "SELECT email FROM customers", "allow", "reads", "ok", null, 5, ["read"]],
        [2, "DROP TABLE orders", "deny", "no-ddl", "refused", "42501", 0, ["ddl"]],
      ],
    );
    assert.deepEqual(statements[0]!.maskedCells, { "public.customers.email": 5 });
    assert.equal(statements[0]!.fingerprint, "fp1");
    assert.equal(statements[0]!.policyRevision, "r3");
    assert.equal(statements[0]!.durationMicros, 1500);
    assert.ok(statements[0]!.completedAt! > statements[0]!.receivedAt!);
  });

  it("counts a statement once even when its completion is stored first", async () => {
    const { store, projector, read } = await setup();
    const s = testSession();
    const received = s.received({ sql: "SELECT 1" });
    const completed = s.completed(received);
    await appendAsIngested(store, [completed, received, s.started()]);
    await projector().catchUp();
    const [statement] = await read.statements(s.sessionId);
    assert.equal(statement?.status, "ok");
    assert.equal(statement?.sql, "SELECT 1");
    assert.equal((await read.session(s.sessionId))?.statementCount, 1);
  });

  it("follows the log live, and a second projector resumes from the checkpoint without applying anything twice", async () => {
    const { store, projector, read } = await setup();
    const s = testSession();
    const first = projector(3);
    await first.start();
    await appendAsIngested(store, [
      s.started(),
      ...Array.from({ length: 10 }, (_, i) => s.received({ sql: `SELECT ${i}` })),
    ]);
    assert.equal(await first.catchUp(), 11n);
    assert.equal((await read.session(s.sessionId))?.statementCount, 10);

    // Two projectors on the same read models (a restart overlapping the old process): each event applies once.
    const second = projector(2);
    await second.start();
    await appendAsIngested(
      store,
      Array.from({ length: 20 }, (_, i) => s.received({ sql: `SELECT ${10 + i}` })),
    );
    await Promise.all([first.catchUp(), second.catchUp()]);
    assert.equal(await second.position(), 31n);
    assert.equal((await read.session(s.sessionId))?.statementCount, 30);
    assert.deepEqual(
      (await read.statements(s.sessionId)).map((st) => st.sequence),
      Array.from({ length: 30 }, (_, i) => i + 1),
    );
  });

  it("rebuild() drops the read models and replays them from the log", async () => {
    const { store, projector, read, schema } = await setup();
    const s = testSession();
    await appendAsIngested(store, [s.started(), s.received({ sql: "SELECT 1" }), s.ended(SessionEndReason.SHUTDOWN)]);
    const p = projector();
    await p.start();
    await p.catchUp();
    const before = await read.session(s.sessionId);
    await database.admin(`UPDATE ${schema}.sessions SET statement_count = 999, end_reason = NULL`);
    assert.equal(await p.rebuild(), 3n);
    assert.deepEqual(await read.session(s.sessionId), before);
    // Still following after the rebuild.
    await appendAsIngested(store, [testSession().started()]);
    assert.equal(await p.catchUp(), 4n);
    assert.equal((await read.listSessions()).length, 2);
  });

  it("lists sessions by principal, target and time", async () => {
    const { store, projector, read } = await setup();
    const hour = 3_600_000;
    const now = Date.now();
    const old = testSession({ subject: "alice", target: "app", startedAt: new Date(now - 5 * hour) });
    const recent = testSession({ subject: "bob", target: "app", startedAt: new Date(now - hour / 2) });
    const open = testSession({ subject: "alice", target: "billing", startedAt: new Date(now - 3 * hour) });
    await appendAsIngested(store, [
      old.started(),
      old.ended(SessionEndReason.CLIENT_CLOSED),
      recent.started(),
      open.started(),
    ]);
    await projector().catchUp();
    const ids = async (filter: Parameters<ReadModel["listSessions"]>[0]) =>
      (await read.listSessions(filter)).map((session) => session.sessionId);
    assert.deepEqual(await ids({}), [recent.sessionId, open.sessionId, old.sessionId]);
    assert.deepEqual(await ids({ principal: "alice" }), [open.sessionId, old.sessionId]);
    assert.deepEqual(await ids({ target: "app" }), [recent.sessionId, old.sessionId]);
    assert.deepEqual(await ids({ since: new Date(now - hour) }), [recent.sessionId, open.sessionId]);
    assert.deepEqual(await ids({ principal: "alice", target: "billing", since: new Date(now - hour) }), [
      open.sessionId,
    ]);
    assert.deepEqual(await ids({ limit: 1 }), [recent.sessionId]);
  });
});
