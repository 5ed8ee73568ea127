// Masking by the catalog, end to end: a mask rule on a partitioned table or an inheritance parent covers what the
// agent reads from its partitions and children directly, and a table the agent made itself (created in the same
// session, or temporary) reads back exactly as inserted, in text and binary, through COPY, with node-postgres, psql,
// asyncpg, psycopg 3 and pgjdbc: what the gateway returns is compared with what the database returns directly. A
// value whose provenance the gateway cannot tell is refused with a clear error, never replaced by a made-up one.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { MessageFramer } from "@agentgate/wire";
import pg from "pg";
import { serialize } from "pg-protocol";
import { runPsql } from "./psql-testing.ts";
import { type PolicyGateway, startPolicyGateway } from "./testing/policy-gateway.ts";
import { rawConnect, type TestGateway } from "./testing.ts";

const run = promisify(execFile);

const IBAN_EU = "DE89370400440532013000";
const IBAN_US = "US12345678901234567890";
const SSN_STAFF = "078-05-1120";
const SSN_CONTRACTOR = "219-09-9999";
const CLASH = "clash-clear-value";
/** What must never reach the agent. */
const CLEAR = [IBAN_EU, IBAN_US, SSN_STAFF, SSN_CONTRACTOR];

const POLICY = `
rules:
  - name: agents
    match: { groups: [agents], classes: [read, write, copy-out, session, transaction, ddl] }
    effect: allow
masks:
  - column: public.accounts.iban
    strategy: redact
  - column: public.people.ssn
    strategy: redact
  - column: public.t_clash.c
    strategy: redact
  - column: pg_temp.tmp_rule.secret
    strategy: redact
  - column: public.vip.ssn
    strategy: redact
  - column: public.ledger_eu.iban
    strategy: redact
`;

// accounts_us has its columns in another order than its parent, contractors a dropped column first: attnums differ
// between parent and child, names do not.
const SCHEMA = `
  CREATE TABLE accounts (id int, region text, iban text, balance numeric) PARTITION BY LIST (region);
  CREATE TABLE accounts_eu PARTITION OF accounts FOR VALUES IN ('eu') PARTITION BY RANGE (id);
  CREATE TABLE accounts_eu_1 PARTITION OF accounts_eu FOR VALUES FROM (0) TO (1000);
  CREATE TABLE accounts_us (balance numeric, iban text, region text, id int);
  ALTER TABLE accounts ATTACH PARTITION accounts_us FOR VALUES IN ('us');
  INSERT INTO accounts VALUES (1, 'eu', '${IBAN_EU}', 10.5), (2, 'us', '${IBAN_US}', 20.25);
  CREATE TABLE people (id int, name text, ssn text);
  CREATE TABLE staff (dept text) INHERITS (people);
  CREATE TABLE contractors (x int, id int, name text, ssn text);
  ALTER TABLE contractors DROP COLUMN x;
  ALTER TABLE contractors INHERIT people;
  INSERT INTO staff VALUES (1, 'Sam', '${SSN_STAFF}', 'ops');
  INSERT INTO contractors VALUES (2, 'Cleo', '${SSN_CONTRACTOR}');
  CREATE TABLE t_clash (c text);
  CREATE TABLE members (id int, name text, ssn text);
  CREATE TABLE vip () INHERITS (members);
  INSERT INTO vip VALUES (3, 'Vic', '${SSN_STAFF}');
  INSERT INTO members VALUES (4, 'Mo', 'not-secret');
  CREATE TABLE ledger (id int, region text, iban text) PARTITION BY LIST (region);
  CREATE TABLE ledger_eu PARTITION OF ledger FOR VALUES IN ('eu');
  CREATE TABLE ledger_us PARTITION OF ledger FOR VALUES IN ('us');
  INSERT INTO ledger VALUES (1, 'eu', '${IBAN_EU}'), (2, 'us', 'US-PUBLIC');
`;

/** A temporary table with a column of each type a made-up value was seen for (0, ****, zero UUID, 2000-01-01, {}). */
const TEMP_TABLE = "CREATE TEMP TABLE tt (i int, t text, u uuid, d date, n numeric, a int[])";
const TEMP_ROWS =
  "INSERT INTO tt VALUES (42, 'hello', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2024-02-29', 123.45, '{1,2,3}'), " +
  "(-7, 'wörld', '6ba7b810-9dad-11d1-80b4-00c04fd430c8', '1999-12-31', 0.001, '{}')";

let pgw: PolicyGateway;
let gw: TestGateway;
/** Where the other drivers' client scripts are written. */
let dir: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "agentgate-masking-catalog-"));
  pgw = await startPolicyGateway({
    rules: POLICY,
    clients: { agent: ["agents"] },
    audit: true,
    masking: true,
    schema: SCHEMA,
  });
  gw = pgw.gw;
});

after(async () => {
  await pgw?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function direct<T>(work: (c: pg.Client) => Promise<T>, binary = false): Promise<T> {
  const client = new pg.Client({ connectionString: gw.directUrl, ...(binary ? { binary: true } : {}) });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

async function agent<T>(work: (c: pg.Client) => Promise<T>, binary = false): Promise<T> {
  const client = new pg.Client({
    host: "127.0.0.1",
    port: gw.port,
    user: "agent",
    database: "app",
    password: await pgw.idp.token("agent"),
    ...(binary ? { binary: true } : {}),
  });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Runs statements one by one, returning each one's rows (or its error's code and message). */
function statements(...sqls: string[]) {
  return async (c: pg.Client) => {
    const out: unknown[] = [];
    for (const sql of sqls) {
      try {
        out.push((await c.query(sql)).rows);
      } catch (error) {
        const e = error as { code?: string; message: string; detail?: string };
        out.push({ code: e.code, message: e.message, detail: e.detail });
      }
    }
    return out;
  };
}

function assertNoClearValue(what: string, text: string | Buffer): void {
  const s = Buffer.isBuffer(text) ? text.toString("latin1") : text;
  for (const clear of CLEAR) assert.ok(!s.includes(clear), `${what}: "${clear}" reached the agent`);
}

/** Every DataRow a node-postgres client receives while `work` runs, as hex. */
async function dataRows(options: () => Promise<pg.ClientConfig>, work: (c: pg.Client) => Promise<void>) {
  const socket = new Socket();
  const chunks: Buffer[] = [];
  socket.on("data", (chunk: Buffer) => chunks.push(chunk));
  const client = new pg.Client({ ...(await options()), stream: () => socket });
  await client.connect();
  try {
    await work(client);
  } finally {
    await client.end();
  }
  const rows: string[] = [];
  new MessageFramer(1 << 30).push(Buffer.concat(chunks), (type, bytes) => {
    if (type === 0x44 /* D */) rows.push(Buffer.from(bytes).toString("hex"));
  });
  return rows;
}

const agentUrl = () => `postgresql://agent@127.0.0.1:${gw.port}/app`;

/** psql through the gateway and directly, same input: stdout of both. */
async function psqlBoth(input: string): Promise<{ gateway: Buffer; direct: Buffer; stderr: string }> {
  const through = await runPsql(agentUrl(), ["-X", "-v", "ON_ERROR_STOP=1"], {
    input,
    env: { PGPASSWORD: await pgw.idp.token("agent") },
  });
  const straight = await runPsql(gw.directUrl, ["-X", "-v", "ON_ERROR_STOP=1"], { input });
  assert.equal(through.code, 0, through.stderr.toString("utf8"));
  assert.equal(straight.code, 0, straight.stderr.toString("utf8"));
  return { gateway: through.stdout, direct: straight.stdout, stderr: through.stderr.toString("utf8") };
}

describe("masks cover partitions and inheritance children", { timeout: 120_000 }, () => {
  const reads = [
    "SELECT * FROM accounts ORDER BY id",
    "SELECT * FROM accounts_eu",
    "SELECT * FROM accounts_eu_1",
    "SELECT * FROM accounts_us",
    "SELECT iban AS x, id FROM ONLY accounts_us",
    "TABLE accounts_eu_1",
    "SELECT upper(iban), balance FROM accounts_us",
    "SELECT * FROM staff",
    "SELECT * FROM contractors",
    "SELECT name, ssn FROM people ORDER BY id",
  ];

  for (const binary of [false, true]) {
    it(`masks partition and child columns read directly (${binary ? "binary" : "text"})`, async () => {
      const results = (await agent(statements(...reads), binary)) as Record<string, unknown>[][];
      assertNoClearValue("results", JSON.stringify(results));
      const [all, eu, eu1, us, only, table, upper, staff, contractors, people] = results.map((rows) =>
        rows.map((row) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, String(v)]))),
      );
      assert.deepEqual(all, [
        { id: "1", region: "eu", iban: "****", balance: "10.5" },
        { id: "2", region: "us", iban: "****", balance: "20.25" },
      ]);
      assert.deepEqual(eu, [{ id: "1", region: "eu", iban: "****", balance: "10.5" }]);
      assert.deepEqual(eu1, eu, "a sub-partition inherits its grandparent's rule");
      assert.deepEqual(us, [{ balance: "20.25", iban: "****", region: "us", id: "2" }], "by name, not attnum");
      assert.deepEqual(only, [{ x: "****", id: "2" }]);
      assert.deepEqual(table, eu);
      assert.deepEqual(upper, [{ upper: "****", balance: "20.25" }], "computed from a partition's column");
      assert.deepEqual(staff, [{ id: "1", name: "Sam", ssn: "****", dept: "ops" }]);
      assert.deepEqual(contractors, [{ id: "2", name: "Cleo", ssn: "****" }], "a child with a dropped column");
      assert.deepEqual(people, [
        { name: "Sam", ssn: "****" },
        { name: "Cleo", ssn: "****" },
      ]);
    });
  }

  it("a rule on a child or partition alone covers the parent's read, which returns its rows (the parent's own too)", async () => {
    const [members, onlyMembers, ledger] = (await agent(
      statements(
        "SELECT name, ssn FROM members ORDER BY id",
        "SELECT name, ssn FROM ONLY members",
        "SELECT id, iban FROM ledger ORDER BY id",
      ),
    )) as Record<string, unknown>[][];
    assertNoClearValue("results", JSON.stringify([members, onlyMembers, ledger]));
    assert.deepEqual(members, [
      { name: "Vic", ssn: "****" },
      { name: "Mo", ssn: "****" },
    ]);
    assert.deepEqual(onlyMembers, [{ name: "Mo", ssn: "****" }], "over-masked: ONLY is not told apart");
    assert.deepEqual(ledger, [
      { id: 1, iban: "****" },
      { id: 2, iban: "****" },
    ]);
  });

  it("masks partitions and children in COPY TO (text and CSV) through psql, and refuses binary COPY", async () => {
    const result = await runPsql(
      agentUrl(),
      [
        "-X",
        "-c",
        "COPY accounts_eu_1 TO STDOUT",
        "-c",
        "COPY accounts_us TO STDOUT (FORMAT csv, HEADER)",
        "-c",
        "COPY (SELECT * FROM staff) TO STDOUT",
        "-c",
        "COPY contractors TO STDOUT",
        "-c",
        "COPY accounts_us TO STDOUT (FORMAT binary)",
      ],
      { env: { PGPASSWORD: await pgw.idp.token("agent") } },
    );
    const out = result.stdout.toString("utf8");
    assertNoClearValue("psql", out + result.stderr.toString("utf8"));
    assert.equal(
      out,
      [
        "1\teu\t****\t10.5",
        "balance,iban,region,id",
        '20.25,"****",us,2',
        "1\tSam\t****\tops",
        "2\tCleo\t****",
        "",
      ].join("\n"),
    );
    assert.match(result.stderr.toString("utf8"), /binary format cannot mask/);
  });
});

describe("no made-up values: tables the agent makes read back exactly", { timeout: 180_000 }, () => {
  for (const binary of [false, true]) {
    it(`a table created in the session and a temporary table, first read (${binary ? "binary" : "text"})`, async () => {
      const table = `made_${binary ? "b" : "t"}`;
      const script = [
        `CREATE TABLE ${table} (id int, note text, u uuid, d date, n numeric, a int[])`,
        `INSERT INTO ${table} SELECT i, t, u, d, n, a FROM (VALUES (1, 'one', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, '2024-02-29'::date, 1.5, '{7}'::int[])) v(i, t, u, d, n, a)`,
        `SELECT * FROM ${table}`,
        TEMP_TABLE,
        TEMP_ROWS,
        "SELECT * FROM tt ORDER BY i",
        "SELECT i + 1 AS j, upper(t) AS loud, a[1] AS first FROM tt ORDER BY i",
        "SELECT * FROM tt ORDER BY i",
        `DROP TABLE ${table}`,
      ];
      const through = await agent(statements(...script), binary);
      const straight = await direct(statements(...script), binary);
      assert.deepEqual(through, straight);
      const first = (through[2] as unknown[])[0] as Record<string, unknown>;
      assert.equal(first.note, "one", "not ****");
      assert.equal((through[5] as unknown[]).length, 2);
    });
  }

  it("binary DataRows through the extended protocol are the database's own bytes", async () => {
    const work = async (c: pg.Client) => {
      await c.query(TEMP_TABLE);
      await c.query(TEMP_ROWS);
      await c.query({
        text: "SELECT * FROM tt WHERE i > $1 ORDER BY i",
        values: [-100],
        binary: true,
      } as pg.QueryConfig);
      await c.query({ text: "SELECT u, d, n, a FROM tt ORDER BY i", binary: true } as pg.QueryConfig);
    };
    const through = await dataRows(
      async () => ({
        host: "127.0.0.1",
        port: gw.port,
        user: "agent",
        database: "app",
        password: await pgw.idp.token("agent"),
      }),
      work,
    );
    const straight = await dataRows(async () => ({ connectionString: gw.directUrl }), work);
    assert.equal(through.length, 4);
    assert.ok(through[1]!.includes("a0eebc999c0b4ef8bb6d6bb9bd380a11"), "the UUID's bytes, not zeros");
    assert.deepEqual(through, straight);
  });

  it("psql prints the same as the database: rows, COPY TO (text, CSV, binary), a table made in the session", async () => {
    const input = [
      `${TEMP_TABLE};`,
      `${TEMP_ROWS};`,
      "SELECT * FROM tt ORDER BY i;",
      "COPY tt TO STDOUT;",
      "COPY tt TO STDOUT (FORMAT csv, HEADER);",
      "COPY (SELECT i, u, a FROM tt) TO STDOUT (FORMAT binary);",
      "CREATE TABLE made_psql (id int, note text);",
      "INSERT INTO made_psql VALUES (1, 'x'), (2, NULL);",
      "TABLE made_psql;",
      "COPY made_psql TO STDOUT;",
      "DROP TABLE made_psql;",
      "",
    ].join("\n");
    const { gateway, direct: straight } = await psqlBoth(input);
    assert.ok(gateway.includes("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
    assert.ok(gateway.includes("PGCOPY"), "binary COPY data came through");
    assert.equal(gateway.toString("latin1"), straight.toString("latin1"));
  });

  it("a temporary table named like a masked permanent one is not masked by its rule; a pg_temp rule masks", async () => {
    const script = [
      `INSERT INTO t_clash VALUES ('permanent')`,
      "CREATE TEMP TABLE t_clash (c text)",
      `INSERT INTO t_clash VALUES ('${CLASH}')`,
      "SELECT c FROM t_clash",
      "SELECT c FROM public.t_clash",
      "CREATE TEMP TABLE tmp_rule (id int, secret text)",
      "INSERT INTO tmp_rule VALUES (1, 'hidden')",
      "SELECT * FROM tmp_rule",
    ];
    const results = await agent(statements(...script));
    assert.deepEqual(results.slice(3), [[{ c: CLASH }], [{ c: "****" }], [], [], [{ id: 1, secret: "****" }]]);
  });

  it("a table created in the same query string is refused with a clear error, not masked; then reads right", async () => {
    const results = await agent(async (c) => {
      const out: unknown[] = [];
      const attempt = async (sql: string) => {
        try {
          const result = await c.query(sql);
          out.push((Array.isArray(result) ? result.at(-1) : result).rows);
        } catch (error) {
          const e = error as { code?: string; message: string; detail?: string };
          out.push({ code: e.code, message: e.message, detail: e.detail });
        }
      };
      await attempt(
        "CREATE TEMP TABLE same_string (i int, t text); INSERT INTO same_string VALUES (5, 'five'); SELECT * FROM same_string",
      );
      await attempt("SELECT * FROM same_string");
      return out;
    });
    const refusal = results[0] as { code: string; message: string; detail: string };
    assert.equal(refusal.code, "55000");
    assert.match(
      refusal.message,
      /^the gateway cannot tell which table result column "i" \(relation OID \d+\) comes from/,
    );
    assert.match(refusal.detail, /The statement ran/);
    assert.deepEqual(results[1], [{ i: 5, t: "five" }], "the next statement reads it (the catalog learned it)");
  });

  it("a table created in an open transaction is refused with a clear error until it commits, then reads right", async () => {
    const results = await agent(
      statements(
        "BEGIN",
        "CREATE TEMP TABLE in_tx (i int, t text)",
        "INSERT INTO in_tx VALUES (1, 'one')",
        "SELECT * FROM in_tx",
        "ROLLBACK",
        "BEGIN",
        "CREATE TEMP TABLE in_tx (i int, t text)",
        "INSERT INTO in_tx VALUES (1, 'one')",
        "COMMIT",
        "SELECT * FROM in_tx",
      ),
    );
    assert.equal((results[3] as { code: string }).code, "55000");
    assert.match((results[3] as { message: string }).message, /cannot tell which table result column "i"/);
    assert.deepEqual(results[9], [{ i: 1, t: "one" }]);
  });

  it("a table created outside the gateway after its catalog loaded reads right the first time", async () => {
    await agent(statements("SELECT 1")); // the catalog is loaded
    await direct((c) =>
      c.query("CREATE TABLE made_outside (id int, note text); INSERT INTO made_outside VALUES (3, 'three')"),
    );
    try {
      assert.deepEqual(await agent(statements("SELECT * FROM made_outside")), [[{ id: 3, note: "three" }]]);
    } finally {
      await direct((c) => c.query("DROP TABLE made_outside"));
    }
  });

  it("errors and notices of statements that touch no masked column are relayed as the database sent them", async () => {
    const work = async (c: pg.Client) => {
      const notices: string[] = [];
      c.on("notice", (n) => notices.push(`${n.message} / ${n.detail}`));
      const out = await statements(
        TEMP_TABLE,
        "INSERT INTO tt (i) VALUES ('x@example.com')",
        "ALTER TABLE tt ADD PRIMARY KEY (i)",
        "INSERT INTO tt (i, t) VALUES (1, 'alice@example.com'), (1, 'b')",
        "SELECT 'bob@example.org'::int",
        "DROP TABLE IF EXISTS no_such_table",
      )(c);
      return { out, notices };
    };
    const through = await agent(work);
    const straight = await direct(work);
    assert.deepEqual(through, straight);
    assert.match(JSON.stringify(through), /x@example\.com/, "a quoted value no mask covers is not replaced");
  });

  it("COPY TO of a temporary table returns its rows through node-postgres (no protocol error, session goes on)", async () => {
    const raw = await rawConnect(gw.port);
    try {
      raw.send(serialize.startup({ user: "agent", database: "app" }));
      await raw.until("R");
      raw.send(serialize.password(await pgw.idp.token("agent")));
      await raw.until("Z");
      raw.send(serialize.query(TEMP_TABLE));
      await raw.until("Z");
      raw.send(serialize.query(TEMP_ROWS));
      await raw.until("Z");
      for (const format of ["text", "csv"]) {
        raw.send(serialize.query(`COPY tt TO STDOUT (FORMAT ${format})`));
        const messages = await raw.until("Z");
        assert.equal(messages.map((m) => m.type).join(""), "HddcCZ", format);
        const rows = messages.filter((m) => m.type === "d").map((m) => m.bytes.subarray(5).toString("utf8"));
        assert.deepEqual(
          rows,
          format === "text"
            ? [
                "42\thello\ta0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\t2024-02-29\t123.45\t{1,2,3}\n",
                "-7\twörld\t6ba7b810-9dad-11d1-80b4-00c04fd430c8\t1999-12-31\t0.001\t{}\n",
              ]
            : [
                '42,hello,a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,2024-02-29,123.45,"{1,2,3}"\n',
                "-7,wörld,6ba7b810-9dad-11d1-80b4-00c04fd430c8,1999-12-31,0.001,{}\n",
              ],
        );
      }
      raw.send(serialize.query("SELECT 1 AS still_here"));
      assert.equal((await raw.until("Z")).map((m) => m.type).join(""), "TDCZ");
    } finally {
      raw.close();
    }
  });

  it("50 reads of a temporary table open no catalog connection after the one that learns it", async (t) => {
    const meter = new pg.Client({ connectionString: gw.directUrl });
    await meter.connect();
    // Connections opened to the database so far (catalog reads open one each); backends report theirs as they exit.
    const sessions = async () => {
      await new Promise((r) => setTimeout(r, 1200));
      await meter.query("SELECT pg_stat_clear_snapshot()");
      const row = (await meter.query("SELECT sessions FROM pg_stat_database WHERE datname = current_database()"))
        .rows[0];
      return Number(row.sessions);
    };
    try {
      await agent(statements("SELECT 1")); // whatever an earlier test left for the catalog to look for is loaded
      await agent(async (c) => {
        const start = await sessions();
        await c.query(TEMP_TABLE);
        await c.query(TEMP_ROWS);
        assert.equal((await c.query("SELECT * FROM tt WHERE i = 42")).rows[0].t, "hello");
        const learned = await sessions();
        for (let i = 0; i < 50; i++) assert.equal((await c.query("SELECT * FROM tt WHERE i = 42")).rows[0].t, "hello");
        const after = await sessions();
        t.diagnostic(`catalog connections: ${learned - start} for CREATE TEMP TABLE, INSERT and the first SELECT`);
        t.diagnostic(`catalog connections: ${after - learned} for the next 50 SELECTs`);
        assert.equal(after - learned, 0);
        assert.ok(learned - start >= 1, "the catalog read the new table once");
      });
    } finally {
      await meter.end();
    }
  });
});

const PYTHON = "/usr/bin/python3";
const JDBC = "/usr/share/java/postgresql.jar";

function need(path: string, install: string): void {
  assert.ok(existsSync(path), `${path} is missing: apt-get install -y ${install}`);
}

/** Runs `code` with `python3` (Debian's, with its packages) against host/port/user/password/dbname; its stdout. */
async function python(code: string, target: { port: number; user: string; password: string; database: string }) {
  const file = join(dir, `client-${Math.random().toString(36).slice(2)}.py`);
  writeFileSync(file, code);
  const { stdout } = await run(PYTHON, [file], {
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      T_PORT: String(target.port),
      T_USER: target.user,
      T_PASSWORD: target.password,
      T_DB: target.database,
    },
    timeout: 60_000,
  });
  return stdout;
}

async function targets() {
  const url = new URL(gw.directUrl);
  return {
    gateway: { port: gw.port, user: "agent", password: await pgw.idp.token("agent"), database: "app" },
    direct: {
      port: Number(url.port),
      user: decodeURIComponent(url.username),
      password: decodeURIComponent(url.password),
      database: url.pathname.slice(1),
    },
  };
}

const ASYNCPG = `
import asyncio, os, asyncpg
async def main():
    c = await asyncpg.connect(host="127.0.0.1", port=int(os.environ["T_PORT"]), user=os.environ["T_USER"],
                              password=os.environ["T_PASSWORD"], database=os.environ["T_DB"], ssl=False)
    await c.execute("${TEMP_TABLE}")
    await c.execute("${TEMP_ROWS}")
    for r in await c.fetch("SELECT * FROM tt ORDER BY i"):
        print(repr(tuple(r)))
    print(repr(await c.fetchval("SELECT u FROM tt WHERE i = $1", 42)))
    await c.execute("CREATE TABLE made_asyncpg (id int, note text)")
    await c.execute("INSERT INTO made_asyncpg VALUES (1, 'x')")
    print(repr([tuple(r) for r in await c.fetch("SELECT * FROM made_asyncpg")]))
    await c.execute("DROP TABLE made_asyncpg")
    await c.close()
asyncio.run(main())
`;

const PSYCOPG = `
import io, os, psycopg
def connect(**kw):
    return psycopg.connect(host="127.0.0.1", port=int(os.environ["T_PORT"]), user=os.environ["T_USER"],
                           password=os.environ["T_PASSWORD"], dbname=os.environ["T_DB"], sslmode="disable", **kw)
with connect(autocommit=True) as c:
    c.execute("${TEMP_TABLE}")
    c.execute("${TEMP_ROWS}")
    print(repr(c.execute("SELECT * FROM tt ORDER BY i").fetchall()))
    print(repr(c.execute("SELECT * FROM tt ORDER BY i", binary=True).fetchall()))
    for sql in ["COPY tt TO STDOUT", "COPY tt TO STDOUT (FORMAT csv)", "COPY tt TO STDOUT (FORMAT binary)"]:
        out = io.BytesIO()
        with c.cursor().copy(sql) as copy:
            for data in copy:
                out.write(bytes(data))
        print(repr(out.getvalue()))
    print(repr(c.execute("SELECT 1").fetchone()))
# The ordinary way: a transaction psycopg opens, committed before the table is read.
with connect() as c:
    c.execute("CREATE TABLE made_psycopg (id int, note text)")
    c.execute("INSERT INTO made_psycopg VALUES (1, 'x')")
    c.commit()
    print(repr(c.execute("SELECT * FROM made_psycopg").fetchall()))
    c.execute("DROP TABLE made_psycopg")
    c.commit()
`;

const JAVA = `
import java.sql.*;
public class Client {
  public static void main(String[] args) throws Exception {
    String url = "jdbc:postgresql://127.0.0.1:" + System.getenv("T_PORT") + "/" + System.getenv("T_DB") + "?sslmode=disable";
    try (Connection c = DriverManager.getConnection(url, System.getenv("T_USER"), System.getenv("T_PASSWORD"))) {
      try (Statement s = c.createStatement()) {
        s.execute("${TEMP_TABLE}");
        s.execute("${TEMP_ROWS.replaceAll("'", "'")}");
      }
      for (int round = 0; round < 6; round++) { // pgjdbc switches to server-prepared (binary) statements at the 5th
        try (PreparedStatement p = c.prepareStatement("SELECT * FROM tt WHERE i > ? ORDER BY i")) {
          p.setInt(1, -100);
          try (ResultSet r = p.executeQuery()) {
            StringBuilder b = new StringBuilder();
            while (r.next()) {
              for (int i = 1; i <= 6; i++) b.append(r.getString(i)).append('|');
              b.append(';');
            }
            System.out.println(b);
          }
        }
      }
      try (Statement s = c.createStatement()) {
        s.execute("CREATE TABLE made_jdbc (id int, note text)");
        s.execute("INSERT INTO made_jdbc VALUES (1, 'x')");
        try (ResultSet r = s.executeQuery("SELECT * FROM made_jdbc")) { r.next(); System.out.println(r.getInt(1) + "|" + r.getString(2)); }
        s.execute("DROP TABLE made_jdbc");
      }
    }
  }
}
`;

describe("no made-up values with asyncpg, psycopg 3 and pgjdbc", { timeout: 240_000 }, () => {
  for (const [name, code] of [
    ["asyncpg", ASYNCPG],
    ["psycopg 3", PSYCOPG],
  ] as const) {
    it(`${name}: a temporary table and a table made in the session read back as the database returns them`, async () => {
      need(PYTHON, name === "asyncpg" ? "python3-asyncpg" : "python3-psycopg");
      const { gateway, direct: straight } = await targets();
      const through = await python(code, gateway);
      const expected = await python(code, straight);
      assert.ok(through.includes("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), through);
      assert.equal(through, expected);
    });
  }

  it("pgjdbc: a temporary table (text and server-prepared binary) and a table made in the session", async () => {
    need(JDBC, "libpostgresql-jdbc-java default-jre-headless");
    const file = join(dir, "Client.java");
    writeFileSync(file, JAVA);
    const java = async (target: { port: number; user: string; password: string; database: string }) =>
      (
        await run("java", ["-cp", JDBC, file], {
          env: {
            PATH: process.env.PATH ?? "/usr/bin:/bin",
            T_PORT: String(target.port),
            T_USER: target.user,
            T_PASSWORD: target.password,
            T_DB: target.database,
          },
          timeout: 120_000,
        })
      ).stdout;
    const { gateway, direct: straight } = await targets();
    const through = await java(gateway);
    assert.ok(through.includes("42|hello|a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11|2024-02-29|123.45|{1,2,3}|"), through);
    assert.equal(through, await java(straight));
  });
});
