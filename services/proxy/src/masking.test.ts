// Masking end to end: a principal whose columns are masked reads them every way we know of, through the gateway,
// with real clients (node-postgres in text and binary, a raw extended-protocol client, psql); everything the client
// receives on the wire, and everything psql prints or writes, is searched for the fixture's clear values. The same
// statements as an auditor (exempt from the masks) return the clear values.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { AUDIT_STREAM, decodeEvent, eventsOfMessage, TYPE_HEADER } from "@agentgate/bus";
import { createPolicyService } from "@agentgate/policy-service";
import { type NatsInstance, type OidcProviderInstance, startNats, startOidcProvider } from "@agentgate/testkit";
import { jetstream } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import pg from "pg";
import { serialize } from "pg-protocol";
import { functionCall } from "./fuzz.ts";
import { runPsql } from "./psql-testing.ts";
import { rawConnect, startTestGateway, type TestGateway } from "./testing.ts";

const SSN = "123-45-6789";
const EMAIL = "alice.secret@example.com";
const CARD = "4111111111111111";
const SALARY = 7654321;
/** What must never reach a masked principal, in any form we can search for. */
const CLEAR = [SSN, EMAIL, CARD, String(SALARY), "123456789" /* the SSN's digits */];

const POLICY = (predicates: "allow" | "refuse") => `
rules:
  - name: agents-read-and-change
    match: { groups: [agents, auditors], classes: [read, write, copy-out, session, transaction, ddl] }
    effect: allow
masks:
  - column: public.customers.ssn
    strategy: redact
    groups: { unmasked: [auditors] }
  - column: public.customers.email
    strategy: partial
    keep: 4
    groups: { unmasked: [auditors] }
  - column: public.customers.card
    strategy: hash
    groups: { unmasked: [auditors] }
  - column: public.customers.salary
    strategy: "null"
    groups: { unmasked: [auditors] }
maskedPredicates: ${predicates}
`;

const SCHEMA = `
  CREATE TABLE customers (id int PRIMARY KEY, name text, ssn text, email text, card text, salary int, note text);
  INSERT INTO customers VALUES
    (1, 'Alice', '${SSN}', '${EMAIL}', '${CARD}', ${SALARY}, 'vip'),
    (2, 'Bob', '987-65-4320', 'bob@example.org', '5500005555555559', 1000, NULL);
  CREATE VIEW customer_view AS SELECT id, name, ssn, email FROM customers;
  CREATE VIEW customer_view2 AS SELECT id, upper(ssn) AS loud, name FROM customer_view;
  CREATE FUNCTION all_ssns() RETURNS SETOF text LANGUAGE sql STABLE AS 'SELECT ssn FROM customers';
  CREATE FUNCTION shout(t text) RETURNS text LANGUAGE plpgsql STABLE AS
    $$ BEGIN RAISE NOTICE 'value is %', t; RETURN 'ok'; END $$;
  CREATE FUNCTION ssn_of(i int) RETURNS text LANGUAGE sql STABLE AS 'SELECT ssn FROM customers WHERE id = i';
  CREATE TABLE scratch (v text);
  ANALYZE customers;
`;

let idp: OidcProviderInstance;
let nats: NatsInstance;
let gw: TestGateway;
let policy: ReturnType<typeof createPolicyService>;
let dir: string;
let rulesFile: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "agentgate-masking-"));
  rulesFile = join(dir, "policy.yaml");
  writeFileSync(rulesFile, POLICY("allow"));
  policy = createPolicyService({ rulesFile, listen: "127.0.0.1:0", pollIntervalMs: 100, debounceMs: 20 });
  const policyPort = (await policy.listen()).port;
  idp = await startOidcProvider({
    audience: "agentgate",
    clients: [
      { clientId: "agent", clientSecret: "agent-secret", groups: ["agents"] },
      { clientId: "auditor", clientSecret: "auditor-secret", groups: ["auditors"] },
    ],
  });
  nats = await startNats();
  gw = await startTestGateway({
    proxy: {
      allowPlaintextLoopback: true,
      audit: { nats: nats.url },
      policy: { address: `127.0.0.1:${policyPort}` },
      masking: { hashKey: "k".repeat(32) },
    },
    identity: { issuer: idp.issuer, audience: "agentgate" },
  });
  const direct = new pg.Client({ connectionString: gw.directUrl });
  await direct.connect();
  await direct.query(SCHEMA);
  await direct.end();
});

after(async () => {
  await gw.close();
  await policy.close();
  await idp.stop();
  await nats.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A node-postgres client as `clientId`, with every byte it receives recorded. */
async function connectAs(
  clientId: string,
  options: { binary?: boolean } = {},
): Promise<{ client: pg.Client; wire: () => Buffer }> {
  const socket = new Socket();
  const chunks: Buffer[] = [];
  socket.on("data", (chunk: Buffer) => chunks.push(chunk));
  const client = new pg.Client({
    host: "127.0.0.1",
    port: gw.port,
    user: clientId,
    database: "app",
    password: await idp.token(clientId),
    stream: () => socket,
    ...(options.binary ? { binary: true } : {}),
  });
  await client.connect();
  return { client, wire: () => Buffer.concat(chunks) };
}

/** Runs `sql` (statements, or a function of the client) as the masked agent; returns what came back, errors included. */
async function asAgent(
  run: (c: pg.Client) => Promise<unknown>,
  binary = false,
): Promise<{ wire: Buffer; result: unknown; notices: string[] }> {
  const { client, wire } = await connectAs("agent", { binary });
  const notices: string[] = [];
  client.on("notice", (n) => notices.push(n.message ?? ""));
  let result: unknown;
  try {
    result = await run(client);
  } catch (error) {
    result = { error: (error as Error).message, detail: (error as { detail?: string }).detail };
  } finally {
    await client.end();
  }
  return { wire: wire(), result, notices };
}

function assertNoClearValue(what: string, ...texts: (string | Buffer)[]): void {
  for (const text of texts) {
    const s = Buffer.isBuffer(text) ? text.toString("latin1") : text;
    for (const clear of CLEAR) assert.ok(!s.includes(clear), `${what}: "${clear}" reached the client`);
  }
}

const q = (sql: string) => (c: pg.Client) => c.query(sql);
const seq =
  (...sqls: string[]) =>
  async (c: pg.Client) => {
    let last: unknown;
    for (const sql of sqls) last = await c.query(sql);
    return last;
  };

// Each way reads at least one masked column; the fixture's clear values must appear nowhere in what comes back.
const WAYS: [string, (c: pg.Client) => Promise<unknown>][] = [
  ["a plain column", q("SELECT ssn FROM customers")],
  ["an alias", q("SELECT ssn AS x, email AS y FROM customers")],
  ["SELECT *", q("SELECT * FROM customers")],
  ["TABLE", q("TABLE customers")],
  ["t.*", q("SELECT c.* FROM customers c")],
  ["a whole-row reference", q("SELECT c FROM customers c")],
  ["row_to_json", q("SELECT row_to_json(c) FROM customers c")],
  ["to_jsonb", q("SELECT to_jsonb(c) FROM customers c")],
  ["a function", q("SELECT upper(ssn), lower(email) FROM customers")],
  ["a cast and concatenation", q("SELECT ssn::varchar || '!' , card::text || '' FROM customers")],
  ["an aggregate", q("SELECT string_agg(ssn, ','), max(email), sum(salary) FROM customers")],
  ["array_agg", q("SELECT array_agg(ssn) FROM customers")],
  ["a scalar subquery", q("SELECT (SELECT ssn FROM customers ORDER BY id LIMIT 1)")],
  ["a derived table", q("SELECT x FROM (SELECT ssn AS x FROM customers) s")],
  ["a derived table with *", q("SELECT * FROM (SELECT * FROM customers) s")],
  ["a CTE", q("WITH t AS (SELECT ssn, email FROM customers) SELECT * FROM t")],
  ["a set operation", q("SELECT ssn FROM customers UNION ALL SELECT 'x'")],
  ["a lateral join", q("SELECT l.s FROM (SELECT 1) o, LATERAL (SELECT ssn AS s FROM customers) l")],
  ["a view", q("SELECT * FROM customer_view")],
  ["a view of a view, computed", q("SELECT * FROM customer_view2")],
  ["format()", q("SELECT format('%s/%s', ssn, email) FROM customers")],
  ["json_build_object", q("SELECT json_build_object('s', ssn, 'c', card) FROM customers")],
  ["CASE", q("SELECT CASE WHEN id > 0 THEN ssn END FROM customers")],
  ["coalesce", q("SELECT coalesce(ssn, 'none') FROM customers")],
  ["substrings glued", q("SELECT substr(ssn, 1, 3) || substr(ssn, 4) FROM customers")],
  ["a window function", q("SELECT first_value(ssn) OVER (ORDER BY id) FROM customers")],
  ["a composite's field", q("SELECT (s.c).ssn FROM (SELECT c FROM customers c) s")],
  ["schema-qualified", q("SELECT public.customers.ssn FROM public.customers")],
  ["hash strategy column", q("SELECT card, count(*) FROM customers GROUP BY card")],
  ["null strategy column", q("SELECT salary, salary + 1 FROM customers")],
  ["a failed cast (error echoes the value)", q("SELECT ssn::int FROM customers")],
  ["a failed regclass lookup", q("SELECT ssn::regclass FROM customers")],
  ["a notice from a function", q("SELECT shout(ssn) FROM customers")],
  ["a user function returning data", q("SELECT all_ssns()")],
  ["a user function in FROM", q("SELECT * FROM all_ssns()")],
  ["a cursor", seq("BEGIN", "DECLARE cur CURSOR FOR SELECT ssn, email FROM customers", "FETCH ALL FROM cur")],
  [
    "a cursor over an expression",
    seq("BEGIN", "DECLARE cur2 CURSOR FOR SELECT upper(ssn) FROM customers", "FETCH 2 FROM cur2"),
  ],
  ["PREPARE / EXECUTE", seq("PREPARE p1 AS SELECT ssn FROM customers", "EXECUTE p1")],
  ["PREPARE / EXECUTE computed", seq("PREPARE p2 AS SELECT lower(ssn) || email FROM customers", "EXECUTE p2")],
  [
    "a named protocol statement, twice",
    async (c) => {
      await c.query({ name: "named", text: "SELECT ssn, card FROM customers WHERE id > $1", values: [0] });
      return c.query({ name: "named", text: "SELECT ssn, card FROM customers WHERE id > $1", values: [0] });
    },
  ],
  ["a parameterised expression", (c) => c.query("SELECT ssn || $1::text FROM customers", ["-x"])],
  ["RETURNING", q("UPDATE customers SET note = note WHERE id = 1 RETURNING ssn, email")],
  [
    "pg_stats",
    q("SELECT attname, most_common_vals::text, histogram_bounds::text FROM pg_stats WHERE tablename = 'customers'"),
  ],
  ["multi-statement string", q("SELECT 1; SELECT ssn FROM customers; SELECT email FROM customers")],
];

describe("masking by provenance", { timeout: 300_000 }, () => {
  it(`never shows a masked value, ${WAYS.length} ways through node-postgres (text format)`, async () => {
    const leaks: string[] = [];
    for (const [what, run] of WAYS) {
      const { wire, notices } = await asAgent(run);
      try {
        assertNoClearValue(what, wire, ...notices);
      } catch (error) {
        leaks.push((error as Error).message);
      }
    }
    assert.deepEqual(leaks, []);
  });

  it("the same statements as an auditor return the clear values", async () => {
    const { client, wire } = await connectAs("auditor");
    try {
      const rows = (await client.query("SELECT ssn, email, card, salary FROM customers WHERE id = 1")).rows;
      assert.deepEqual(rows, [{ ssn: SSN, email: EMAIL, card: CARD, salary: SALARY }]);
      assert.equal(
        (await client.query("SELECT upper(ssn) AS u FROM customer_view2 v JOIN customers USING (id) WHERE id = 1")).rows
          .length,
        0 + 1,
      );
      assert.deepEqual((await client.query("SELECT loud FROM customer_view2 WHERE id = 1")).rows, [{ loud: SSN }]);
    } finally {
      await client.end();
    }
    assert.ok(wire().toString("latin1").includes(SSN));
    for (const [what, run] of WAYS) {
      if (/pg_stats|notice|failed|user function/.test(what)) continue; // no clear value expected there
      const { client: auditor, wire: auditorWire } = await connectAs("auditor");
      try {
        await run(auditor).catch(() => undefined);
      } finally {
        await auditor.end();
      }
      const seen = auditorWire().toString("latin1");
      assert.ok(
        CLEAR.slice(0, 3).some((clear) => seen.includes(clear)) || seen.includes(String(SALARY)),
        `${what}: the auditor sees clear values`,
      );
    }
  });

  it("the audit records how many cells of which column were masked, and never a masked value", async () => {
    await asAgent(q("SELECT ssn, upper(email) AS loud, name FROM customers -- counted"));
    await new Promise((r) => setTimeout(r, 300)); // outcomes ride with the next event or leave within 50 ms
    const nc = await connect({ servers: nats.url });
    try {
      const consumer = await jetstream(nc).consumers.get(AUDIT_STREAM);
      const messages = await consumer.fetch({ max_messages: 100_000, expires: 1000 });
      const all: Buffer[] = [];
      let counted: Record<string, bigint> | undefined;
      let countedId: string | undefined;
      for await (const m of messages) {
        all.push(Buffer.from(m.data));
        for (const e of eventsOfMessage(m.headers?.get(TYPE_HEADER) ?? "", m.data)) {
          const event = decodeEvent(e.typeName, e.data);
          if (event.$typeName === "agentgate.v1.StatementReceived" && event.sql.endsWith("-- counted")) {
            countedId = event.statementId;
          }
          if (event.$typeName === "agentgate.v1.StatementCompleted" && event.statementId === countedId) {
            counted = event.maskedCells;
          }
        }
      }
      assert.deepEqual(counted, { "public.customers.ssn": 2n, loud: 2n });
      assertNoClearValue("the audit stream", Buffer.concat(all));
    } finally {
      await nc.close();
    }
  });

  it("refuses a fast-path FunctionCall (no SQL to judge or mask by), records it, and the session goes on", async () => {
    const direct = new pg.Client({ connectionString: gw.directUrl });
    await direct.connect();
    const oid = Number((await direct.query("SELECT 'ssn_of'::regproc::oid AS oid")).rows[0].oid);
    await direct.end();
    const raw = await rawConnect(gw.port);
    try {
      raw.send(serialize.startup({ user: "agent", database: "app" }));
      await raw.until("R");
      raw.send(serialize.password(await idp.token("agent")));
      await raw.until("Z");
      const int4 = Buffer.alloc(4);
      int4.writeInt32BE(1);
      for (const binary of [false, true]) {
        raw.send(functionCall(oid, [int4], binary));
        const messages = await raw.until("Z");
        assert.equal(messages.map((m) => m.type).join(""), "EZ", "an error, then ready for the next query");
        const error = messages[0]!.bytes.toString("utf8");
        assert.match(error, /C0A000\0/);
        assert.match(error, /fast-path function call protocol is not supported/);
        assertNoClearValue("FunctionCall", Buffer.concat(messages.map((m) => m.bytes)));
      }
      raw.send(serialize.query("SELECT ssn_of(1) AS s -- after the refusal"));
      const after = await raw.until("Z");
      assert.equal(after.map((m) => m.type).join(""), "TDCZ");
      assertNoClearValue("the SQL call", Buffer.concat(after.map((m) => m.bytes)));
    } finally {
      raw.close();
    }
    await new Promise((r) => setTimeout(r, 300));
    const nc = await connect({ servers: nats.url });
    try {
      const consumer = await jetstream(nc).consumers.get(AUDIT_STREAM);
      const messages = await consumer.fetch({ max_messages: 100_000, expires: 1000 });
      const calls: string[] = [];
      const outcomes = new Map<string, string>();
      for await (const m of messages) {
        for (const e of eventsOfMessage(m.headers?.get(TYPE_HEADER) ?? "", m.data)) {
          const event = decodeEvent(e.typeName, e.data);
          if (event.$typeName === "agentgate.v1.StatementReceived" && event.protocol === "function-call") {
            assert.equal(event.sql, `-- fast-path FunctionCall of function OID ${oid} (refused)`);
            calls.push(event.statementId);
          }
          if (event.$typeName === "agentgate.v1.StatementCompleted")
            outcomes.set(event.statementId, `${event.status} ${event.sqlstate}`);
        }
      }
      assert.equal(calls.length, 2);
      for (const id of calls) assert.equal(outcomes.get(id), "refused 0A000");
    } finally {
      await nc.close();
    }
  });

  it("masks with values of the column's type: strategies, text and binary format", async () => {
    const text = await asAgent(q("SELECT ssn, email, card, salary, name FROM customers WHERE id = 1"));
    const row = (text.result as pg.QueryResult).rows[0];
    assert.equal(row.ssn, "****");
    assert.equal(row.email, "****.com");
    assert.match(row.card, /^h:[0-9a-f]{16}$/);
    assert.equal(row.salary, null);
    assert.equal(row.name, "Alice", "unmasked columns are untouched");
    const binary = await asAgent(q("SELECT ssn, email, card, salary, id, name FROM customers WHERE id = 1"), true);
    const b = (binary.result as pg.QueryResult).rows[0];
    assert.deepEqual(
      { ...b, ssn: String(b.ssn), email: String(b.email), card: String(b.card) },
      { ssn: "****", email: "****.com", card: row.card, salary: null, id: 1, name: "Alice" },
    );
    assertNoClearValue("binary", binary.wire);
    // Hashing is deterministic: equal values group together, and equal the text format's hash.
    const grouped = await asAgent(q("SELECT card, count(*)::int AS n FROM customers GROUP BY card ORDER BY n"));
    assert.equal((grouped.result as pg.QueryResult).rows.length, 2);
  });

  it("binary results through the extended protocol, with and without Describe", async () => {
    for (const describe of [true, false]) {
      const raw = await rawConnect(gw.port);
      try {
        raw.send(serialize.startup({ user: "agent", database: "app" }));
        await raw.until("R");
        raw.send(serialize.password(await idp.token("agent")));
        await raw.until("Z");
        raw.send(
          Buffer.concat([
            serialize.parse({ name: "s", text: "SELECT ssn, salary, id FROM customers ORDER BY id" }),
            serialize.bind({ statement: "s", binary: true }),
            ...(describe ? [serialize.describe({ type: "P" })] : []),
            serialize.execute({}),
            serialize.sync(),
          ]),
        );
        const messages = await raw.until("Z");
        const types = messages.map((m) => m.type).join("");
        assert.equal(types, describe ? "12TDDCZ" : "12DDCZ", "the gateway's own Describe is not seen");
        const all = Buffer.concat(messages.map((m) => m.bytes));
        assertNoClearValue(`raw extended, describe=${describe}`, all);
        const salary = Buffer.alloc(4);
        salary.writeInt32BE(SALARY);
        assert.ok(!all.includes(salary), "the binary salary is not sent");
        const row = messages.find((m) => m.type === "D")!.bytes;
        // 3 cells: ssn (4 bytes "****"), salary NULL (-1), id (int4 1).
        assert.equal(row.readInt16BE(5), 3);
        assert.equal(row.readInt32BE(7), 4);
        assert.equal(row.toString("utf8", 11, 15), "****");
        assert.equal(row.readInt32BE(15), -1);
        assert.equal(row.readInt32BE(19), 4);
        assert.equal(row.readInt32BE(23), 1);
      } finally {
        raw.close();
      }
    }
  });

  it("psql: rows, \\copy, COPY TO STDOUT (text and CSV), errors and notices", async () => {
    const out = join(dir, "copy.csv");
    const url = `postgresql://agent@127.0.0.1:${gw.port}/app`;
    const env = { PGPASSWORD: await idp.token("agent") };
    const result = await runPsql(
      url,
      [
        "-c",
        "SELECT * FROM customers",
        "-c",
        "COPY customers TO STDOUT",
        "-c",
        "COPY (SELECT id, ssn, email FROM customers) TO STDOUT WITH (FORMAT csv, HEADER)",
        "-c",
        `\\copy customers to '${out}' csv`,
        "-c",
        "SELECT shout(ssn) FROM customers",
        "-c",
        "SELECT ssn::int FROM customers",
      ],
      { env },
    );
    const printed = result.stdout.toString("utf8") + result.stderr.toString("utf8");
    assertNoClearValue("psql", printed, readFileSync(out));
    assert.match(printed, /id,ssn,email/, "the CSV header is kept");
    assert.match(printed, /invalid input syntax for type integer: "\*\*\*\*"/);
    assert.match(readFileSync(out, "utf8"), /^1,Alice,"?\*\*\*\*"?,"?\*\*\*\*\.com"?,"?h:[0-9a-f]{16}"?,,vip$/m);
  });

  it("refuses to store masked values where they would not be masked, and stores the rest", async () => {
    for (const sql of [
      "CREATE TABLE leak1 AS SELECT ssn FROM customers",
      "SELECT ssn INTO leak2 FROM customers",
      "INSERT INTO scratch SELECT ssn FROM customers",
      "INSERT INTO scratch SELECT upper(email) FROM customer_view",
      "UPDATE customers SET note = ssn",
      "WITH x AS (INSERT INTO scratch SELECT card FROM customers RETURNING 1) SELECT count(*) FROM x",
      "CREATE TEMP TABLE leak3 AS SELECT * FROM customers",
    ]) {
      const { result } = await asAgent(q(sql));
      assert.match(JSON.stringify(result), /would store values of the masked column/, sql);
    }
    const stored = await asAgent(
      seq("INSERT INTO scratch SELECT name FROM customers", "SELECT count(*)::int AS n FROM scratch"),
    );
    assert.deepEqual((stored.result as pg.QueryResult).rows, [{ n: 2 }]);
    const direct = new pg.Client({ connectionString: gw.directUrl });
    await direct.connect();
    try {
      const tables = await direct.query("SELECT relname FROM pg_class WHERE relname LIKE 'leak%'");
      assert.deepEqual(tables.rows, [], "nothing was created");
      assert.equal((await direct.query("SELECT count(*)::int AS n FROM customers WHERE note = ssn")).rows[0].n, 0);
    } finally {
      await direct.end();
    }
  });

  it("refuses COPY in binary format of masked columns, and allows it for columns that are not", async () => {
    const refused = await asAgent(q("COPY customers TO STDOUT (FORMAT binary)"));
    assert.match(JSON.stringify(refused.result), /binary format cannot mask/);
    assertNoClearValue("binary COPY", refused.wire);
  });

  it("with maskedPredicates: refuse, a masked column may not filter, join, group or order", async () => {
    writeFileSync(rulesFile, POLICY("refuse"));
    assert.equal((await policy.reload()).ok, true);
    try {
      for (const sql of [
        "SELECT id FROM customers WHERE ssn LIKE '123%'",
        "SELECT id FROM customers ORDER BY ssn",
        "SELECT count(*) FROM customers GROUP BY email",
        "SELECT a.id FROM customers a JOIN customers b ON a.card = b.card",
      ]) {
        const { result } = await asAgent(q(sql));
        assert.match(JSON.stringify(result), /may not be used to filter, join, group or order/, sql);
      }
      const allowed = await asAgent(q("SELECT id FROM customers WHERE name = 'Alice'"));
      assert.deepEqual((allowed.result as pg.QueryResult).rows, [{ id: 1 }]);
      const { client } = await connectAs("auditor");
      try {
        assert.equal((await client.query("SELECT id FROM customers WHERE ssn LIKE '123%'")).rows.length, 1);
      } finally {
        await client.end();
      }
    } finally {
      writeFileSync(rulesFile, POLICY("allow"));
      await policy.reload();
    }
  });
});
