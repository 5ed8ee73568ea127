// The backstop's decisions without a server: which switches go before which client messages, what is rewritten, and
// which server messages are the answers to the gateway's own switches. The end-to-end test is ../backstop.test.ts.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { analyze, initSqlAnalysis } from "@agentgate/sql";
import { Backend, Frontend, parameterStatus, readyForQuery } from "@agentgate/wire";
import { serialize } from "pg-protocol";
import { Backstop, backstopFacts } from "./backstop.ts";

before(() => initSqlAnalysis());

const commandComplete = (tag: string) => {
  const body = Buffer.from(`${tag}\0`);
  const out = Buffer.alloc(5 + body.length);
  out[0] = Backend.CommandComplete;
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
};

/** A session's backstop after a startup in which the server reported the read-only default. */
function session(readOnlySession = false): Backstop {
  const backstop = new Backstop({ readOnlySession });
  const shown = backstop.startupParameter(parameterStatus("default_transaction_read_only", "on"));
  assert.deepEqual(shown, parameterStatus("default_transaction_read_only", readOnlySession ? "on" : "off"));
  return backstop;
}

/**
 * Forwards one simple Query and lets the server answer each unit sent (with the transaction status `status`), as a
 * client that waits for each result sees it; returns the text of what went upstream, the gateway's switches first.
 */
function query(backstop: Backstop, sql: string): string[] {
  const status = statusAfter(backstop, sql);
  const sent = pipelined(backstop, sql);
  for (const _ of sent) answer(backstop, [commandComplete("X"), readyForQuery(status)]);
  return sent;
}

/** The transaction status the server reports after `sql`: a test's model of PostgreSQL's block state. */
const inBlock = new WeakMap<Backstop, boolean>();
function statusAfter(backstop: Backstop, sql: string): "I" | "T" {
  const words = sql.trim().toUpperCase();
  let open = inBlock.get(backstop) ?? false;
  if (/^(BEGIN|START)/.test(words)) open = true;
  else if (/^(COMMIT|END|ABORT)/.test(words) || (/^ROLLBACK/.test(words) && !/^ROLLBACK\s+TO/.test(words))) {
    open = false;
  }
  inBlock.set(backstop, open);
  return open ? "T" : "I";
}

/** Forwards one simple Query without waiting for its answer. */
function pipelined(backstop: Backstop, sql: string): string[] {
  const sent: Buffer[] = [];
  const message = serialize.query(sql);
  const out = backstop.forward(Frontend.Query, message, backstopFacts(analyze(sql)), (b) => sent.push(b));
  return [...sent, out].map(queryText);
}

function queryText(message: Buffer): string {
  return message.toString("utf8", 5, message.length - 1);
}

/** The server answers every unit in order; returns which of its messages the client would see. */
function answer(backstop: Backstop, messages: Buffer[]): string[] {
  return messages.filter((m) => !backstop.received(m[0]!, m)).map((m) => String.fromCharCode(m[0]!));
}

const ON = "SET default_transaction_read_only = on";
const OFF = "SET default_transaction_read_only = off";
const ENTER = "SAVEPOINT agentgate_backstop; SET LOCAL transaction_read_only = on";
const LEAVE = "RELEASE SAVEPOINT agentgate_backstop";

describe("read-only backstop decisions", () => {
  it("switches the session default only where reads and writes alternate", () => {
    const b = session();
    assert.deepEqual(query(b, "SELECT 1"), ["SELECT 1"]);
    assert.deepEqual(query(b, "SELECT * FROM t"), ["SELECT * FROM t"]);
    assert.deepEqual(query(b, "INSERT INTO t VALUES (1)"), [OFF, "INSERT INTO t VALUES (1)"]);
    assert.deepEqual(query(b, "DELETE FROM t"), ["DELETE FROM t"]);
    assert.deepEqual(query(b, "SET search_path = app"), ["SET search_path = app"]);
    assert.deepEqual(query(b, "SELECT 2"), [ON, "SELECT 2"]);
    assert.deepEqual(query(b, "SELECT nextval('s')"), [OFF, "SELECT nextval('s')"]);
  });

  it("never switches a session whose principal may only read", () => {
    const b = session(true);
    assert.deepEqual(query(b, "INSERT INTO t VALUES (1)"), ["INSERT INTO t VALUES (1)"]);
    assert.deepEqual(query(b, "BEGIN"), ["BEGIN"]);
    assert.deepEqual(query(b, "SELECT 1"), ["SELECT 1"]);
  });

  it("turns the default on again in a session that may only read, when something else turned it off", () => {
    const b = session(true);
    query(b, "SELECT * FROM v");
    answer(b, [parameterStatus("default_transaction_read_only", "off")]);
    assert.deepEqual(query(b, "SELECT 1"), [ON, "SELECT 1"]);
    assert.deepEqual(query(b, "INSERT INTO t VALUES (1)"), ["INSERT INTO t VALUES (1)"], "and never off");
  });

  it("commits a block that never wrote read-only (a hidden hold cursor runs at COMMIT)", () => {
    const b = session();
    query(b, "BEGIN");
    assert.deepEqual(query(b, "SELECT * FROM v"), [ENTER, "SELECT * FROM v"]);
    assert.deepEqual(query(b, "COMMIT"), [
      "RELEASE SAVEPOINT agentgate_backstop; SET LOCAL transaction_read_only = on",
      "COMMIT",
    ]);
    query(b, "BEGIN");
    assert.deepEqual(query(b, "COMMIT"), ["SET LOCAL transaction_read_only = on", "COMMIT"]);
  });

  it("drops the answers to its own switches and the default's reports, and nothing else", () => {
    const b = session();
    pipelined(b, "INSERT INTO t VALUES (1)"); // [OFF] [INSERT]
    pipelined(b, "SELECT 1"); // [ON] [SELECT]
    const seen = answer(b, [
      parameterStatus("default_transaction_read_only", "off"),
      commandComplete("SET"),
      readyForQuery("I"),
      commandComplete("INSERT 0 1"),
      readyForQuery("I"),
      commandComplete("SET"),
      parameterStatus("application_name", "x"),
      readyForQuery("I"),
      commandComplete("SELECT 1"),
      readyForQuery("I"),
    ]);
    assert.deepEqual(seen, ["C", "Z", "S", "C", "Z"]);
  });

  it("takes a default turned off behind its back from the server's report, and turns it on before a read", () => {
    const b = session();
    query(b, "SELECT f()"); // a user function the analysis took for a read (no catalog here: unknown is a write)
    query(b, "SELECT 1");
    answer(b, [parameterStatus("default_transaction_read_only", "off"), readyForQuery("I")]);
    assert.deepEqual(query(b, "SELECT 2"), [ON, "SELECT 2"]);
  });

  it("opens a plain BEGIN read-write and runs each read of the block in its read-only savepoint", () => {
    const b = session();
    assert.deepEqual(query(b, "BEGIN"), ["BEGIN\nREAD WRITE"]);
    assert.deepEqual(query(b, "SELECT 1"), [ENTER, "SELECT 1"]);
    assert.deepEqual(query(b, "SELECT 2"), ["SELECT 2"]);
    assert.deepEqual(query(b, "UPDATE t SET x = 1"), [LEAVE, "UPDATE t SET x = 1"]);
    assert.deepEqual(query(b, "INSERT INTO t VALUES (1)"), ["INSERT INTO t VALUES (1)"]);
    assert.deepEqual(query(b, "SELECT 3"), [ENTER, "SELECT 3"]);
    assert.deepEqual(query(b, "COMMIT"), ["COMMIT"]);
    // Outside the block the default never changed: reads need nothing, the next write switches it.
    assert.deepEqual(query(b, "SELECT 4"), ["SELECT 4"]);
    assert.deepEqual(query(b, "START TRANSACTION ISOLATION LEVEL SERIALIZABLE -- a comment"), [
      "START TRANSACTION ISOLATION LEVEL SERIALIZABLE -- a comment\nREAD WRITE",
    ]);
    assert.deepEqual(query(b, "ROLLBACK"), ["ROLLBACK"]);
    assert.deepEqual(query(b, "BEGIN READ ONLY"), ["BEGIN READ ONLY"]);
    assert.deepEqual(query(b, "SELECT 5"), ["SELECT 5"]);
    assert.deepEqual(query(b, "UPDATE t SET x = 2"), ["UPDATE t SET x = 2"]);
  });

  it("follows the client's savepoints", () => {
    const b = session();
    query(b, "BEGIN");
    query(b, "SAVEPOINT a"); // made while ours is not open
    assert.deepEqual(query(b, "SELECT 1"), [ENTER, "SELECT 1"]);
    query(b, "SAVEPOINT b"); // made inside ours
    assert.deepEqual(query(b, "ROLLBACK TO SAVEPOINT b"), ["ROLLBACK TO SAVEPOINT b"]);
    assert.deepEqual(query(b, "SELECT 2"), ["SELECT 2"], "still inside ours");
    assert.deepEqual(query(b, "ROLLBACK TO a"), ["ROLLBACK TO a"]);
    assert.deepEqual(query(b, "SELECT 3"), [ENTER, "SELECT 3"], "ours went with the rollback to a");
    assert.deepEqual(query(b, "RELEASE a"), ["RELEASE a"]);
    assert.deepEqual(query(b, "DELETE FROM t"), ["DELETE FROM t"], "ours was released with a");
  });

  it("commits a block that holds a WITH HOLD cursor read-only", () => {
    const b = session();
    query(b, "BEGIN");
    assert.deepEqual(query(b, "DECLARE c CURSOR WITH HOLD FOR SELECT 1"), [
      ENTER,
      "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
    ]);
    assert.deepEqual(query(b, "COMMIT"), [
      "RELEASE SAVEPOINT agentgate_backstop; SET LOCAL transaction_read_only = on",
      "COMMIT",
    ]);
    query(b, "BEGIN");
    query(b, "DECLARE d CURSOR WITH HOLD FOR SELECT 1");
    query(b, "INSERT INTO t VALUES (1)");
    assert.deepEqual(query(b, "COMMIT"), ["SET LOCAL transaction_read_only = on", "COMMIT"]);
  });

  it("trusts the server's transaction status once nothing is in flight", () => {
    const b = session();
    pipelined(b, "BEGIN");
    answer(b, [commandComplete("BEGIN"), readyForQuery("I")]); // say the BEGIN did not open a block after all
    assert.deepEqual(query(b, "SELECT 1"), ["SELECT 1"]);
    assert.deepEqual(query(b, "UPDATE t SET x = 1"), [OFF, "UPDATE t SET x = 1"]);
  });

  it("switches a read pipelined behind a unit still in flight, which may have turned the default off", () => {
    const b = session();
    assert.deepEqual(pipelined(b, "SELECT * FROM v"), ["SELECT * FROM v"]);
    assert.deepEqual(pipelined(b, "SELECT * FROM w"), [ON, "SELECT * FROM w"]);
    answer(b, [commandComplete("SELECT 1"), readyForQuery("I"), commandComplete("SET"), readyForQuery("I")]);
    answer(b, [commandComplete("SELECT 1"), readyForQuery("I")]);
    assert.deepEqual(query(b, "SELECT 1"), ["SELECT 1"], "nothing in flight: the default is known");
  });

  it("asserts again what a failed switch of its own was to change", () => {
    const b = session();
    const error = Buffer.from([Backend.ErrorResponse, 0, 0, 0, 5, 0]);
    assert.deepEqual(pipelined(b, "UPDATE t SET x = 1"), [OFF, "UPDATE t SET x = 1"]);
    assert.deepEqual(answer(b, [error, readyForQuery("I")]), [], "the client never sees the gateway's own error");
    answer(b, [commandComplete("UPDATE 0"), readyForQuery("I")]);
    assert.deepEqual(query(b, "UPDATE t SET x = 2"), [OFF, "UPDATE t SET x = 2"]);
    query(b, "BEGIN");
    assert.deepEqual(pipelined(b, "SELECT 1"), [ENTER, "SELECT 1"]);
    answer(b, [error, readyForQuery("E"), error, readyForQuery("E")]);
    assert.deepEqual(query(b, "SELECT 2"), [ENTER, "SELECT 2"], "its savepoint is taken for closed");
  });

  it("decides an extended-protocol unit at its first message, and a named statement at its Bind", () => {
    const b = session();
    const sent: string[] = [];
    const send = (m: Buffer) => sent.push(queryText(m));
    const write = backstopFacts(analyze("INSERT INTO t VALUES ($1)"));
    b.forward(Frontend.Parse, serialize.parse({ name: "ins", text: "INSERT INTO t VALUES ($1)" }), write, send);
    b.forward(Frontend.Bind, serialize.bind({ statement: "ins", values: ["1"] }), undefined, send);
    b.forward(Frontend.Execute, serialize.execute({}), undefined, send);
    b.forward(Frontend.Sync, serialize.sync(), undefined, send);
    assert.deepEqual(sent, [OFF]);
    const read = backstopFacts(analyze("SELECT 1"));
    b.forward(Frontend.Parse, serialize.parse({ text: "SELECT 1" }), read, send);
    b.forward(Frontend.Bind, serialize.bind({}), undefined, send);
    b.forward(Frontend.Execute, serialize.execute({}), undefined, send);
    // Pipelined behind the read in the same implicit transaction: no switch (PostgreSQL then refuses the write).
    b.forward(Frontend.Bind, serialize.bind({ statement: "ins", values: ["2"] }), undefined, send);
    b.forward(Frontend.Sync, serialize.sync(), undefined, send);
    assert.deepEqual(sent, [OFF, ON]);
    // A unit that starts with a Bind of the named write switches before it.
    b.forward(Frontend.Bind, serialize.bind({ statement: "ins", values: ["3"] }), undefined, send);
    assert.deepEqual(sent, [OFF, ON, OFF]);
  });

  it("rewrites a plain BEGIN in a Parse, keeping its name and parameter types", () => {
    const b = session();
    const out = b.forward(
      Frontend.Parse,
      serialize.parse({ name: "b1", text: "BEGIN", types: [23] }),
      backstopFacts(analyze("BEGIN")),
      () => assert.fail("no switch"),
    );
    assert.deepEqual(out, serialize.parse({ name: "b1", text: "BEGIN\nREAD WRITE", types: [23] }));
  });
});
