// The analysis resolves the target's catalog (issue 12): an administrator hides writes behind what an agent reads
// (views over views, an operator, casts explicit and implicit, an aggregate, a domain check, a row-level-security
// policy, a function that shadows a built-in, a view made after the session's catalog was loaded), and the agent's
// plain SELECT is judged a write by the policy: refused with the policy's 42501 naming the rule, not with the
// backstop's 25006, and nothing changes. Each hidden write is first shown to be live, run directly as the gateway's
// own upstream role (a non-superuser that does not own the tables, so row-level security applies to it).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parseConfig } from "@agentgate/config";
import { createPolicyService } from "@agentgate/policy-service";
import { type FreshDatabase, freshDatabase, type OidcProviderInstance, startOidcProvider } from "@agentgate/testkit";
import pg from "pg";
import { pino } from "pino";
import { createProxy, type ProxyWorker } from "../proxy.ts";
import { factsOf } from "./catalog.ts";

const RULES = `
rules:
  - name: agents-read
    match: { groups: [agents], classes: [read, copy-out, session, transaction] }
    effect: allow
  - name: agents-never-write
    match: { groups: [agents], classes: [write, copy-in, ddl, procedural, privilege, admin] }
    effect: deny
`;

const ROLE = `catalog_agent_${randomBytes(4).toString("hex")}`;
const PASSWORD = randomBytes(18).toString("hex");

// An administrator's objects. Every hidden write lands in victims or notes, which STATE reads.
const SCHEMA = `
  CREATE TABLE victims (id int PRIMARY KEY, name text NOT NULL DEFAULT 'v');
  INSERT INTO victims (id) SELECT generate_series(1, 10);
  CREATE TABLE notes (note text);
  CREATE FUNCTION eat() RETURNS int LANGUAGE plpgsql AS $$ BEGIN DELETE FROM victims; RETURN 1; END $$;
  CREATE FUNCTION scribble(what text) RETURNS boolean LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO notes VALUES (what); RETURN true; END $$;

  CREATE VIEW report AS SELECT eat() AS n;
  CREATE VIEW report2 AS SELECT n FROM report;
  CREATE VIEW report3 AS SELECT n + 0 AS n FROM report2;
  CREATE VIEW plain_names AS SELECT id, upper(name) AS name FROM victims;

  CREATE FUNCTION same_text(a text, b text) RETURNS boolean LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO notes VALUES ('compared ' || a); RETURN a = b; END $$;
  CREATE OPERATOR === (LEFTARG = text, RIGHTARG = text, FUNCTION = same_text);

  CREATE TYPE ticket AS (code text);
  CREATE FUNCTION ticket_of(t text) RETURNS ticket LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO notes VALUES ('ticket ' || t); RETURN ROW(t)::ticket; END $$;
  CREATE CAST (text AS ticket) WITH FUNCTION ticket_of(text);
  CREATE FUNCTION day_number(i int) RETURNS date LANGUAGE plpgsql AS $$
    BEGIN DELETE FROM victims WHERE id = i; RETURN date '2000-01-01' + i; END $$;
  CREATE CAST (integer AS date) WITH FUNCTION day_number(integer);

  CREATE TYPE badge AS (code text);
  CREATE FUNCTION badge_of_int(i int) RETURNS badge LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO notes VALUES ('badge ' || i); RETURN ROW(i::text)::badge; END $$;
  CREATE CAST (int AS badge) WITH FUNCTION badge_of_int(int) AS IMPLICIT;
  CREATE FUNCTION describe(b badge) RETURNS text LANGUAGE sql STABLE AS 'SELECT (b).code';

  CREATE FUNCTION tally_step(s int, v int) RETURNS int LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO notes VALUES ('tally ' || v); RETURN s + 1; END $$;
  CREATE AGGREGATE tally(int) (SFUNC = tally_step, STYPE = int, INITCOND = '0');

  CREATE DOMAIN checked_text AS text CHECK (scribble(VALUE));

  CREATE TABLE secrets (id int, body text);
  INSERT INTO secrets SELECT g, 's' || g FROM generate_series(1, 5) g;
  ALTER TABLE secrets ENABLE ROW LEVEL SECURITY;
  CREATE POLICY peek ON secrets FOR SELECT USING (scribble('rls ' || id));

  CREATE FUNCTION lower(n int) RETURNS int LANGUAGE plpgsql AS $$
    BEGIN DELETE FROM victims WHERE id = n; RETURN n; END $$;
`;

const GRANTS = `
  GRANT USAGE ON SCHEMA public TO ${ROLE};
  GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${ROLE};
`;

const STATE = "SELECT (SELECT count(*) FROM victims)::int AS victims, (SELECT count(*) FROM notes)::int AS notes";

/** Each hiding place and the plain-looking read that runs it. */
const HIDDEN: readonly { kind: string; sql: string }[] = [
  { kind: "a view over a view over a view over a writing function", sql: "SELECT n FROM report3" },
  { kind: "a user-defined operator", sql: "SELECT id FROM victims WHERE name === 'v'" },
  { kind: "an explicit cast to a user type", sql: "SELECT CAST(name AS ticket) FROM victims WHERE id = 1" },
  { kind: "a user cast between built-in types", sql: "SELECT id::date AS day FROM victims" },
  { kind: "an implicit cast into a function's argument", sql: "SELECT describe(id) FROM victims" },
  { kind: "an aggregate whose state function writes", sql: "SELECT tally(id) FROM victims" },
  { kind: "a domain CHECK", sql: "SELECT 'hello'::checked_text AS greeting" },
  { kind: "a row-level security policy", sql: "SELECT count(*) FROM secrets" },
  { kind: "a user function that shadows a built-in by argument type", sql: "SELECT lower(id) FROM victims" },
];

let db: FreshDatabase;
let idp: OidcProviderInstance;
let policy: ReturnType<typeof createPolicyService>;
let proxy: ProxyWorker;
let port: number;
let dir: string;
let admin: pg.Client;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "agentgate-catalog-"));
  writeFileSync(join(dir, "policy.yaml"), RULES);
  policy = createPolicyService({ rulesFile: join(dir, "policy.yaml"), listen: "127.0.0.1:0" });
  const policyPort = (await policy.listen()).port;
  idp = await startOidcProvider({
    audience: "agentgate",
    clients: [{ clientId: "agent", clientSecret: "agent-secret", groups: ["agents"] }],
  });
  db = await freshDatabase();
  admin = new pg.Client({ connectionString: db.url });
  await admin.connect();
  await admin.query(`CREATE ROLE ${ROLE} LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD '${PASSWORD}'`);
  await admin.query(SCHEMA);
  await admin.query(GRANTS);
  const config = parseConfig({
    proxy: {
      listen: "127.0.0.1:0",
      drainTimeoutMs: 1000,
      allowPlaintextLoopback: true,
      policy: { address: `127.0.0.1:${policyPort}` },
    },
    identity: { issuer: idp.issuer, audience: "agentgate" },
    targets: { app: { url: upstreamUrl() } },
  });
  proxy = createProxy({ config, logger: pino({ level: process.env.AGENTGATE_TEST_LOG ?? "silent" }) });
  port = (await proxy.listen()).port;
});

after(async () => {
  await proxy?.close({ drainTimeoutMs: 1000 });
  await admin?.end();
  await db?.drop();
  const cleanup = new pg.Client({ connectionString: new URL("/postgres", db.url).toString() });
  await cleanup.connect();
  await cleanup.query(`DROP ROLE IF EXISTS ${ROLE}`);
  await cleanup.end();
  await policy?.close();
  await idp?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** The target as the gateway signs in: the upstream role. */
function upstreamUrl(): string {
  const url = new URL(db.url);
  url.username = ROLE;
  url.password = PASSWORD;
  return url.toString();
}

async function state(): Promise<string> {
  return JSON.stringify((await admin.query(STATE)).rows[0]);
}

/** Runs `sql` directly as the upstream role in a block that is rolled back; true when it changed the state. */
async function changesDirectly(sql: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: upstreamUrl() });
  await client.connect();
  try {
    const before = JSON.stringify((await client.query(STATE)).rows[0]);
    await client.query("BEGIN");
    await client.query(sql);
    const during = JSON.stringify((await client.query(STATE)).rows[0]);
    await client.query("ROLLBACK");
    return during !== before;
  } finally {
    await client.end();
  }
}

async function agent(): Promise<pg.Client> {
  const client = new pg.Client({
    host: "127.0.0.1",
    port,
    database: "app",
    user: "agent",
    password: await idp.token("agent"),
  });
  await client.connect();
  return client;
}

type Outcome = "ok" | { code: string; message: string };

async function outcome(query: Promise<unknown>): Promise<Outcome> {
  try {
    await query;
    return "ok";
  } catch (error) {
    const e = error as { code?: string; message?: string };
    return { code: e.code ?? "none", message: e.message ?? "" };
  }
}

function refusedByPolicy(result: Outcome, sql: string): void {
  assert.ok(result !== "ok", `${sql}: ran`);
  assert.equal(result.code, "42501", `${sql}: ${result.message}`);
  assert.match(result.message, /permission denied by policy \(rule "agents-never-write"\)/, sql);
}

describe("the analysis resolves the target's catalog", { timeout: 120_000 }, () => {
  it("every hidden write is live when run directly as the gateway's upstream role", async () => {
    for (const { kind, sql } of HIDDEN) assert.ok(await changesDirectly(sql), `${kind}: ${sql} changes nothing`);
  });

  it("judges each plain SELECT over a hidden write a write: the policy refuses it, in both protocols", async () => {
    const before = await state();
    const client = await agent();
    try {
      for (const { sql } of HIDDEN) {
        refusedByPolicy(await outcome(client.query(sql)), sql);
        refusedByPolicy(await outcome(client.query({ text: sql, values: [] })), `${sql} (extended)`);
      }
      // Reads that run nothing hidden stay reads, a view's among them.
      assert.deepEqual((await client.query("SELECT count(*)::int AS n FROM plain_names")).rows, [{ n: 10 }]);
      assert.deepEqual((await client.query("SELECT name FROM victims WHERE id = $1", [1])).rows, [{ name: "v" }]);
    } finally {
      await client.end();
    }
    assert.equal(await state(), before, "nothing changed");
  });

  it("reloads the catalog for a view made after the session started, and judges it by its definition", async () => {
    const client = await agent();
    try {
      assert.equal(await outcome(client.query("SELECT 1")), "ok");
      await admin.query(`
        CREATE VIEW late_report AS SELECT eat() AS n;
        CREATE VIEW late_names AS SELECT name FROM victims;
        GRANT SELECT ON late_report, late_names TO ${ROLE};`);
      assert.ok(await changesDirectly("SELECT n FROM late_report"), "the late view's write is live");
      const before = await state();
      // Known only after a reload: a harmless new view reads (so the reload happened), the writing one is refused.
      assert.deepEqual((await client.query("SELECT count(*)::int AS n FROM late_names")).rows, [{ n: 10 }]);
      refusedByPolicy(await outcome(client.query("SELECT n FROM late_report")), "late_report");
      assert.equal(await state(), before, "nothing changed");
    } finally {
      await client.end();
    }
  });

  it("counts a relation the catalog does not know, even after a reload, as a write (fail closed)", async () => {
    const client = await agent();
    try {
      refusedByPolicy(await outcome(client.query("SELECT * FROM no_such_relation")), "no_such_relation");
      assert.equal(await outcome(client.query("SELECT count(*) FROM victims")), "ok", "the session goes on");
    } finally {
      await client.end();
    }
  });
});

describe("the catalog's closure", () => {
  it("carries what may write up any depth of edges and through cycles, by every name of each object", () => {
    const facts = factsOf({
      functions: [
        ["1", "public", "eat", "v", true],
        ["2", "public", "Honest", "s", true],
        ["3", "pg_catalog", "nextval", "v", false],
        ["4", "pg_catalog", "random", "v", false],
      ],
      relations: [
        ["10", "public", "deep", "v"],
        ["11", "public", "middle", "v"],
        ["12", "public", "bottom", "v"],
        ["13", "public", "loop_a", "v"],
        ["14", "public", "loop_b", "v"],
        ["15", "other", "bottom", "v"],
        ["16", "public", "tickets", "v"],
        ["17", "public", "dice", "v"],
        ["18", "public", "remote", "f"],
      ],
      types: [["20", "public", "checked"]],
      operators: [["30", "public", "==="]],
      edges: [
        ...["r10 r11", "r11 r12", "r12 f1", "r13 r14", "r14 r13", "r14 f2", "r16 f3", "r17 f4", "t20 f2", "f2 f1"],
        "x0 f3",
      ],
    });
    assert.deepEqual(facts.implicitCasts, ["write"]);
    assert.deepEqual(facts.relations.get("deep"), ["write"]);
    assert.deepEqual(facts.relations.get("public.deep"), ["write"]);
    // Through a cycle, reaching Honest(), which reaches eat().
    assert.deepEqual(facts.relations.get("loop_a"), ["write"]);
    // A built-in judged by name, and a harmless volatile one.
    assert.deepEqual(facts.relations.get("tickets"), ["write"]);
    assert.deepEqual(facts.relations.get("dice"), []);
    // A foreign table runs what its server runs: unknown, a write.
    assert.deepEqual(facts.relations.get("remote"), ["write"]);
    // Names in two schemas: the unqualified one is the union; each qualified one its own.
    assert.deepEqual(facts.relations.get("other.bottom"), []);
    assert.deepEqual(facts.relations.get("bottom"), ["write"]);
    assert.deepEqual(facts.types.get("checked"), ["write"]);
    assert.deepEqual(facts.operators.get("==="), []);
    // A STABLE function that reaches a writing one counts as volatile; names are lower-cased for functions.
    assert.equal(facts.volatility.get("honest"), "v");
    assert.equal(facts.volatility.get("public.honest"), "v");
    assert.equal(facts.relations.get("nowhere"), undefined);
  });
});
