// The read-only backstop end to end: writes hidden where the analysis cannot see them (a view over a writing
// function) are refused by PostgreSQL itself wherever the policy decided a read, in autocommit, in the extended
// protocol and inside transaction blocks, while the writes the policy allows keep working, alone and mixed with reads
// in one block, with savepoints, cursors and psql.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type pg from "pg";
import { serialize } from "pg-protocol";
import { runPsql, text } from "./psql-testing.ts";
import { type PolicyGateway, startPolicyGateway } from "./testing/policy-gateway.ts";
import { rawSignIn, type TestGateway } from "./testing.ts";

const RULES = `
rules:
  - name: readers-read
    match: { groups: [readers], classes: [read, copy-out, session, transaction] }
    effect: allow
  - name: writers-change-rows
    match: { groups: [writers], classes: [read, write, copy-in, copy-out, session, transaction] }
    effect: allow
`;

// An administrator's objects, made long ago for other reasons: the view's column deletes the victims. The functions
// it calls say they are STABLE, and one calls a volatile one inside its body: no analysis of the catalog can tell that
// they write, and only the database, running them, can stop them.
const SCHEMA = `
  CREATE TABLE victims (id int PRIMARY KEY);
  INSERT INTO victims SELECT generate_series(1, 10);
  CREATE TABLE t (id int);
  CREATE FUNCTION eat_now() RETURNS int LANGUAGE plpgsql AS $$ BEGIN DELETE FROM victims; RETURN 1; END $$;
  CREATE FUNCTION eat() RETURNS int LANGUAGE plpgsql STABLE AS $$ BEGIN RETURN eat_now(); END $$;
  CREATE VIEW harmless AS SELECT eat() AS x;
  CREATE FUNCTION loosen() RETURNS text LANGUAGE sql STABLE AS
    $$ SELECT set_config('default_transaction_read_only', 'off', false) $$;
  CREATE VIEW settings_view AS SELECT loosen() AS x;
  CREATE FUNCTION hold_now() RETURNS int LANGUAGE plpgsql AS
    $$ BEGIN EXECUTE 'DECLARE hidden CURSOR WITH HOLD FOR SELECT eat_now()'; RETURN 1; END $$;
  CREATE FUNCTION hold() RETURNS int LANGUAGE plpgsql STABLE AS $$ BEGIN RETURN hold_now(); END $$;
  CREATE VIEW hold_view AS SELECT hold() AS x;
`;

let pgw: PolicyGateway;
let gw: TestGateway;
let direct: pg.Client;

before(async () => {
  pgw = await startPolicyGateway({
    rules: RULES,
    clients: { reader: ["readers"], writer: ["writers"] },
    tls: true,
    schema: SCHEMA,
  });
  gw = pgw.gw;
  direct = await pgw.direct();
});

after(async () => {
  await direct.end();
  await pgw.close();
});

const connectAs = (clientId: string) => pgw.connect(clientId);
const token = (clientId: string) => pgw.idp.token(clientId);

async function sqlstate(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "ok";
  } catch (error) {
    return (error as { code?: string }).code ?? String(error);
  }
}

async function victims(): Promise<number> {
  return Number((await direct.query("SELECT count(*) AS n FROM victims")).rows[0].n);
}

async function rowsOfT(): Promise<number[]> {
  return (await direct.query("SELECT id FROM t ORDER BY id")).rows.map((r) => r.id as number);
}

async function reset(): Promise<void> {
  await direct.query("TRUNCATE t; INSERT INTO victims SELECT generate_series(1, 10) ON CONFLICT DO NOTHING");
}

describe("the read-only backstop", { timeout: 60_000 }, () => {
  it("the hidden write is live: directly, reading the view deletes the victims", async () => {
    await reset();
    await direct.query("SELECT * FROM harmless");
    assert.equal(await victims(), 0);
    await reset();
    assert.equal(await victims(), 10);
  });

  it("refuses the hidden write of a read in autocommit, simple and extended, for readers and writers", async () => {
    await reset();
    for (const who of ["reader", "writer"]) {
      const client = await connectAs(who);
      assert.equal(await sqlstate(client.query("SELECT * FROM harmless")), "25006", who);
      assert.equal(await sqlstate(client.query("SELECT x FROM harmless WHERE $1::int = 1", [1])), "25006", who);
      assert.equal(await sqlstate(client.query("COPY (SELECT * FROM harmless) TO STDOUT")), "25006", who);
      assert.equal(
        await sqlstate(client.query("SELECT * FROM generate_series(1, 2) g, LATERAL (SELECT * FROM harmless) h")),
        "25006",
      );
      // The session goes on.
      assert.deepEqual((await client.query("SELECT count(*)::int AS n FROM victims")).rows, [{ n: 10 }]);
      await client.end();
    }
    assert.equal(await victims(), 10);
  });

  it("runs allowed writes read-write and the reads around them read-only", async () => {
    await reset();
    const client = await connectAs("writer");
    await client.query("INSERT INTO t VALUES (1)");
    assert.equal(await sqlstate(client.query("SELECT * FROM harmless")), "25006");
    await client.query("INSERT INTO t VALUES ($1)", [2]);
    await client.query("UPDATE t SET id = id + 10 WHERE id = $1", [2]);
    assert.equal(await sqlstate(client.query("SELECT x FROM harmless WHERE $1::int = 1", [1])), "25006");
    await client.query("INSERT INTO t VALUES (3)");
    assert.deepEqual(await rowsOfT(), [1, 3, 12]);
    assert.equal(await victims(), 10);
    await client.end();
  });

  it("keeps transaction blocks that mix reads and writes working, with every read inside read-only", async () => {
    await reset();
    const client = await connectAs("writer");
    await client.query("BEGIN");
    assert.deepEqual((await client.query("SELECT count(*)::int AS n FROM t")).rows, [{ n: 0 }]);
    await client.query("INSERT INTO t VALUES (1)");
    assert.deepEqual((await client.query("SELECT count(*)::int AS n FROM t WHERE id = $1", [1])).rows, [{ n: 1 }]);
    await client.query("INSERT INTO t VALUES ($1)", [2]);
    await client.query("SELECT * FROM t FOR UPDATE"); // a row lock is a write: it runs read-write
    await client.query("COMMIT");
    assert.deepEqual(await rowsOfT(), [1, 2]);

    await client.query("START TRANSACTION ISOLATION LEVEL REPEATABLE READ");
    await client.query("INSERT INTO t VALUES (3)");
    assert.equal(await sqlstate(client.query("SELECT * FROM harmless")), "25006");
    await client.query("ROLLBACK");
    assert.deepEqual(await rowsOfT(), [1, 2]);
    assert.equal(await victims(), 10);
    await client.end();
  });

  it("follows the client's savepoints: a rollback to one undoes only what it should", async () => {
    await reset();
    const client = await connectAs("writer");
    await client.query("BEGIN");
    await client.query("SAVEPOINT a");
    await client.query("SELECT 1");
    await client.query("INSERT INTO t VALUES (1)");
    await client.query("SAVEPOINT b");
    assert.equal(await sqlstate(client.query("SELECT * FROM harmless")), "25006");
    await client.query("ROLLBACK TO SAVEPOINT b");
    await client.query("INSERT INTO t VALUES (2)");
    await client.query("RELEASE SAVEPOINT b");
    await client.query("SELECT count(*) FROM t");
    await client.query("ROLLBACK TO SAVEPOINT a");
    assert.equal(await sqlstate(client.query("SELECT * FROM harmless")), "25006");
    await client.query("ROLLBACK TO SAVEPOINT a");
    await client.query("INSERT INTO t VALUES (3)");
    await client.query("RELEASE a");
    await client.query("COMMIT");
    assert.deepEqual(await rowsOfT(), [3]);
    assert.equal(await victims(), 10);
    await client.end();
  });

  it("runs a hold cursor's query read-only when the block commits, even after a write", async () => {
    await reset();
    const client = await connectAs("writer");
    await client.query("BEGIN");
    await client.query("DECLARE c CURSOR WITH HOLD FOR SELECT * FROM harmless");
    assert.equal(await sqlstate(client.query("COMMIT")), "25006");
    await client.query("BEGIN");
    await client.query("DECLARE c CURSOR WITH HOLD FOR SELECT * FROM harmless");
    await client.query("INSERT INTO t VALUES (1)");
    assert.equal(await sqlstate(client.query("COMMIT")), "25006");
    assert.deepEqual(await rowsOfT(), []);
    // A plain cursor: FETCH is a read.
    await client.query("BEGIN");
    await client.query("DECLARE d CURSOR FOR SELECT * FROM harmless");
    await client.query("INSERT INTO t VALUES (2)");
    assert.equal(await sqlstate(client.query("FETCH d")), "25006");
    await client.query("ROLLBACK");
    assert.equal(await victims(), 10);
    await client.end();
  });

  it("sees a function turn the session default off behind the analysis, and turns it on again", async () => {
    await reset();
    for (const who of ["writer", "reader"]) {
      const client = await connectAs(who);
      await client.query("SELECT * FROM settings_view");
      assert.equal(await sqlstate(client.query("SELECT * FROM harmless")), "25006", who);
      await client.end();
    }
    assert.equal(await victims(), 10);
  });

  it("commits a block that only read read-only: a hold cursor declared behind the analysis runs refused", async () => {
    await reset();
    const client = await connectAs("writer");
    await client.query("BEGIN");
    await client.query("SELECT * FROM hold_view");
    assert.equal(await sqlstate(client.query("COMMIT")), "25006");
    assert.equal(await victims(), 10);
    await client.end();
  });

  it("refuses a client's own switch of the session default, and shows the client a writable session", async () => {
    const client = await connectAs("writer");
    for (const sql of [
      "SET default_transaction_read_only = off",
      "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
      "SELECT set_config('default_transaction_read_only', 'off', false)",
      "RESET default_transaction_read_only",
    ]) {
      assert.equal(await sqlstate(client.query(sql)), "42501", sql);
    }
    await client.query("BEGIN");
    await client.query("SELECT 1");
    assert.equal(await sqlstate(client.query("RELEASE SAVEPOINT agentgate_backstop")), "42501");
    await client.query("ROLLBACK");
    await client.end();
    // libpq's target_session_attrs=read-write reads the reported default: the gateway's session is writable.
    const url = `postgresql://writer@127.0.0.1:${gw.port}/app?sslmode=require&target_session_attrs=read-write`;
    const result = await runPsql(url, ["-X", "-At", "-c", "INSERT INTO t VALUES (7)", "-c", "SELECT * FROM harmless"], {
      env: { PGPASSWORD: await token("writer") },
    });
    assert.match(text(result.stdout), /INSERT 0 1/);
    assert.match(text(result.stderr), /read-only transaction/);
    assert.equal(await victims(), 10);
  });

  it("works with psql's implicit transactions and ON_ERROR_ROLLBACK savepoints", async () => {
    await reset();
    const url = `postgresql://writer@127.0.0.1:${gw.port}/app?sslmode=require`;
    const sql = [
      "INSERT INTO t VALUES (1);",
      "SELECT count(*) FROM t;",
      "SELECT * FROM harmless;",
      "INSERT INTO t VALUES (2);",
      "SELECT * FROM t ORDER BY id;",
      "COMMIT;",
    ].join("\n");
    const result = await runPsql(url, ["-X", "-At", "-v", "AUTOCOMMIT=off", "-v", "ON_ERROR_ROLLBACK=on"], {
      env: { PGPASSWORD: await token("writer") },
      input: sql,
    });
    assert.match(text(result.stderr), /cannot execute DELETE in a read-only transaction/);
    assert.equal(text(result.stdout), "INSERT 0 1\n1\nINSERT 0 1\n1\n2\nCOMMIT\n");
    assert.deepEqual(await rowsOfT(), [1, 2]);
    assert.equal(await victims(), 10);
  });

  it("fails closed on a write pipelined behind a read in one implicit transaction", async () => {
    await reset();
    const { raw, startup } = await rawSignIn(gw.port, "writer", await token("writer"));
    // The client is shown the session it may use: writable (the backstop's read-only default is the gateway's).
    const reported = startup.filter((m) => m.type === "S").map((m) => m.bytes.toString("latin1", 5).split("\0"));
    assert.deepEqual(
      reported.find(([name]) => name === "default_transaction_read_only"),
      ["default_transaction_read_only", "off", ""],
    );
    // Two statements before one Sync share one implicit transaction, whose mode the first one sets.
    raw.send(
      Buffer.concat([
        serialize.parse({ text: "SELECT 1" }),
        serialize.bind({}),
        serialize.execute({}),
        serialize.parse({ text: "INSERT INTO t VALUES (9)" }),
        serialize.bind({}),
        serialize.execute({}),
        serialize.sync(),
      ]),
    );
    const answers = await raw.until("Z");
    assert.deepEqual(
      answers.filter((m) => m.type === "E").map((m) => m.fields?.C),
      ["25006"],
    );
    // The other way round the write's unit is read-write; the gateway's own switches never show.
    raw.send(Buffer.concat([serialize.query("INSERT INTO t VALUES (10)"), serialize.query("SELECT * FROM harmless")]));
    const second = [...(await raw.until("Z")), ...(await raw.until("Z"))];
    assert.deepEqual(
      second.map((m) => (m.type === "E" ? `E${m.fields?.C}` : m.type)),
      ["C", "Z", "T", "E25006", "Z"],
    );
    // A read pipelined behind one that turns the default off behind the analysis is still read-only.
    raw.send(
      Buffer.concat([serialize.query("SELECT * FROM settings_view"), serialize.query("SELECT * FROM harmless")]),
    );
    const third = [...(await raw.until("Z")), ...(await raw.until("Z"))];
    assert.deepEqual(
      third.filter((m) => m.type === "E").map((m) => m.fields?.C),
      ["25006"],
    );
    assert.deepEqual(await rowsOfT(), [10]);
    assert.equal(await victims(), 10);
    raw.close();
  });
});
