import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { createPolicyService } from "@agentgate/policy-service";
import { FIXTURE_SCHEMA, STATEMENT_FIXTURES } from "@agentgate/sql/testing";
import { type OidcProviderInstance, type SelfSignedCert, selfSignedCert, startOidcProvider } from "@agentgate/testkit";
import pg from "pg";
import { serialize } from "pg-protocol";
import { rawSignIn, startTestGateway, type TestGateway } from "./testing.ts";

const READER_CLASSES = ["read", "copy-out", "session", "transaction"];
const RULES = `
rules:
  - name: readers-read
    match: { groups: [readers], classes: [read, copy-out, session, transaction] }
    effect: allow
  - name: writers-change-rows
    match: { groups: [writers], classes: [read, write, copy-in, copy-out, session, transaction] }
    effect: allow
  - name: orders-need-approval
    match: { groups: [writers], classes: [write], relations: ["app.orders"] }
    effect: require_approval
    approvers: [dbas]
`;

let idp: OidcProviderInstance;
let cert: SelfSignedCert;
let gw: TestGateway;
let policy: ReturnType<typeof createPolicyService>;
let policyPort: number;
let dir: string;
let rulesFile: string;

async function startPolicy(port = 0) {
  policy = createPolicyService({ rulesFile, listen: `127.0.0.1:${port}` });
  policyPort = (await policy.listen()).port;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "agentgate-enforce-"));
  rulesFile = join(dir, "policy.yaml");
  writeFileSync(rulesFile, RULES);
  await startPolicy();
  idp = await startOidcProvider({
    audience: "agentgate",
    clients: [
      { clientId: "reader", clientSecret: "reader-secret", groups: ["readers"] },
      { clientId: "writer", clientSecret: "writer-secret", groups: ["writers"] },
    ],
  });
  cert = await selfSignedCert({ commonName: "localhost" });
  gw = await startTestGateway({
    proxy: {
      tls: { cert: cert.certPath, key: cert.keyPath },
      allowPlaintextLoopback: true,
      policy: { address: `127.0.0.1:${policyPort}` },
    },
    identity: { issuer: idp.issuer, audience: "agentgate" },
  });
  const direct = new pg.Client({ connectionString: gw.directUrl });
  await direct.connect();
  await direct.query(FIXTURE_SCHEMA);
  await direct.end();
});

after(async () => {
  await gw.close();
  await policy.close();
  await idp.stop();
  await cert.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

async function connectAs(clientId: string): Promise<pg.Client> {
  const client = new pg.Client({
    host: "127.0.0.1",
    port: gw.port,
    user: clientId,
    database: "app",
    password: await idp.token(clientId),
    ssl: { ca: cert.cert, servername: "localhost" },
  });
  await client.connect();
  return client;
}

async function outcome(p: Promise<unknown>): Promise<{ code?: string; message?: string; where?: string } | "ok"> {
  try {
    await p;
    return "ok";
  } catch (error) {
    const e = error as { code?: string; message?: string; where?: string };
    return { code: e.code, message: e.message, where: e.where };
  }
}

/** Everything a refused statement could have changed, read directly on the target. */
async function snapshot(): Promise<string> {
  const direct = new pg.Client({ connectionString: gw.directUrl });
  await direct.connect();
  const parts = await direct.query(`
    SELECT (SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM t) AS t,
           (SELECT md5(string_agg(u::text, ',' ORDER BY id)) FROM u) AS u,
           (SELECT count(*) FROM staging) AS staging,
           (SELECT md5(string_agg(relname || relkind::text || coalesce(relacl::text, ''), ',' ORDER BY relname)) FROM pg_class
              WHERE relnamespace IN ('public'::regnamespace, 'app'::regnamespace)) AS relations,
           (SELECT md5(string_agg(rolname, ',' ORDER BY rolname)) FROM pg_roles) AS roles,
           (SELECT md5(string_agg(proname, ',' ORDER BY proname)) FROM pg_proc
              WHERE pronamespace = 'public'::regnamespace) AS functions,
           (SELECT last_value FROM s) AS sequence`);
  await direct.end();
  return JSON.stringify(parts.rows[0]);
}

// Left out: cases whose class comes from a hand-made catalog answer, and calls of my_stable_fn, which the fixtures
// (analysed without a catalog) count as writes but the gateway, reading the target's real catalog, knows only reads.
const refusedForReaders = STATEMENT_FIXTURES.filter(
  (f) => !READER_CLASSES.includes(f.class) && f.catalog === undefined && !f.sql.includes("my_stable_fn"),
);
const readsForReaders = STATEMENT_FIXTURES.filter(
  (f) => f.class === "read" && f.setup === undefined && (f.statements ?? 1) === 1 && f.catalog === undefined,
);

describe("a read-only principal", { timeout: 180_000 }, () => {
  it(`can read (${readsForReaders.length} read statements of the suite)`, async () => {
    const reader = await connectAs("reader");
    try {
      const failures: string[] = [];
      for (const f of readsForReaders) {
        const r = await outcome(reader.query(f.sql));
        if (r !== "ok" && r.code === "42501") failures.push(`${f.sql} -> ${r.message}`);
      }
      assert.deepEqual(failures, [], "reads refused by the gateway");
    } finally {
      await reader.end();
    }
  });

  it(`is refused every write, DDL, privilege and admin form of the suite (${refusedForReaders.length}), in both protocols, and nothing changes`, async () => {
    const before = await snapshot();
    const reader = await connectAs("reader");
    try {
      const leaks: string[] = [];
      for (const f of refusedForReaders) {
        for (const extended of [false, true]) {
          const r = await outcome(extended ? reader.query({ text: f.sql, values: [] }) : reader.query(f.sql));
          if (r === "ok" || r.code !== "42501")
            leaks.push(`${extended ? "extended" : "simple"}: ${f.sql} -> ${JSON.stringify(r)}`);
        }
      }
      assert.deepEqual(leaks, [], "statements not refused with 42501");
    } finally {
      await reader.end();
    }
    assert.equal(await snapshot(), before, "the target is unchanged");
  });

  it("is refused through psql too, reading still works, and the table is unchanged", async () => {
    const before = await snapshot();
    const token = await idp.token("reader");
    const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(
        "psql",
        ["-X", "-A", "-t", "-v", "ON_ERROR_STOP=0", `postgresql://reader@127.0.0.1:${gw.port}/app?sslmode=require`],
        { env: { PATH: process.env.PATH, PGPASSWORD: token }, timeout: 30_000 },
        (e, out, err) => resolve({ code: e ? 1 : 0, stdout: out, stderr: err }),
      ).stdin!.end("SELECT count(*) FROM t;\nDELETE FROM t;\nDROP TABLE u;\nGRANT ALL ON t TO PUBLIC;\n"),
    );
    assert.equal(code, 0);
    assert.equal(stdout.trim(), "2");
    assert.equal((stderr.match(/ERROR: {2}permission denied by policy/g) ?? []).length, 3, stderr);
    assert.equal(await snapshot(), before);
  });

  it("refuses what cannot be parsed with 42601 and the parser's message, in both protocols", async () => {
    const reader = await connectAs("reader");
    try {
      for (const query of [reader.query("SELEC 1"), reader.query({ text: "SELEC 1", values: [] })]) {
        const r = await outcome(query);
        assert.ok(r !== "ok" && r.code === "42601", JSON.stringify(r));
        assert.match(r.message ?? "", /syntax error at or near "SELEC"/);
      }
    } finally {
      await reader.end();
    }
  });

  it("judges the target's own functions by their volatility in its catalog", async () => {
    const reader = await connectAs("reader");
    try {
      assert.equal(await outcome(reader.query("SELECT my_stable_fn()")), "ok", "a STABLE function only reads");
      const volatile = await outcome(reader.query("SELECT my_volatile_fn()"));
      assert.ok(volatile !== "ok" && volatile.code === "42501", "a VOLATILE function counts as a write");
      const unknown = await outcome(reader.query("SELECT no_such_fn()"));
      assert.ok(unknown !== "ok" && unknown.code === "42501", "an unknown function counts as a write");
    } finally {
      await reader.end();
    }
  });

  it("gets a read-only upstream session it cannot switch off", async () => {
    const reader = await connectAs("reader");
    try {
      assert.equal(
        (await reader.query("SHOW default_transaction_read_only")).rows[0].default_transaction_read_only,
        "on",
      );
      for (const sql of [
        "SET default_transaction_read_only = off",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
        "BEGIN READ WRITE",
        "SELECT set_config('default_transaction_read_only', 'off', false)",
        "RESET ALL",
      ]) {
        const r = await outcome(reader.query(sql));
        assert.ok(r !== "ok" && r.code === "42501", `${sql}: ${JSON.stringify(r)}`);
      }
    } finally {
      await reader.end();
    }
  });

  it("sees a refusal inside a transaction block exactly like a server error: failed until ROLLBACK", async () => {
    const reader = await connectAs("reader");
    try {
      await reader.query("BEGIN");
      const refused = await outcome(reader.query("DELETE FROM t"));
      assert.ok(refused !== "ok" && refused.code === "42501");
      assert.match(refused.message ?? "", /permission denied by policy/);
      assert.equal(refused.where, undefined, "no PL/pgSQL context in a refusal");
      const next = await outcome(reader.query("SELECT 1"));
      assert.ok(next !== "ok" && next.code === "25P02");
      await reader.query("ROLLBACK");
      assert.equal((await reader.query("SELECT count(*)::int AS n FROM t")).rows[0].n, 2);
    } finally {
      await reader.end();
    }
  });

  it("is refused at Parse and at a later Bind of that statement (node-postgres, named statement)", async () => {
    const reader = await connectAs("reader");
    try {
      const named = await outcome(reader.query({ name: "wipe", text: "DELETE FROM t WHERE id = $1", values: [1] }));
      assert.ok(named !== "ok" && named.code === "42501");
      const again = await outcome(reader.query({ name: "wipe", text: "DELETE FROM t WHERE id = $1", values: [2] }));
      assert.ok(again !== "ok" && again.code === "42501", "Bind of a statement refused at Parse is refused too");
      assert.equal(again.where, undefined, "no PL/pgSQL context in an extended-protocol refusal");
      assert.equal((await reader.query({ text: "SELECT count(*)::int AS n FROM t", values: [] })).rows[0].n, 2);
    } finally {
      await reader.end();
    }
  });

  it("is refused inside a pipeline, and what follows the Sync runs", async () => {
    const { raw } = await rawSignIn(gw.port, "reader", await idp.token("reader"));
    raw.send(
      Buffer.concat([
        serialize.parse({ text: "SELECT v FROM t WHERE id = 1" }),
        serialize.bind({}),
        serialize.execute({}),
        serialize.parse({ text: "DELETE FROM t" }),
        serialize.bind({}),
        serialize.execute({}),
        serialize.sync(),
        serialize.parse({ text: "SELECT count(*) FROM t" }),
        serialize.bind({}),
        serialize.execute({}),
        serialize.sync(),
      ]),
    );
    const first = await raw.until("Z");
    assert.deepEqual(
      first.map((m) => m.type),
      ["1", "2", "D", "C", "E", "Z"],
      "the gateway's own ParseComplete and BindComplete never reach the client",
    );
    assert.equal(first[4]!.fields?.C, "42501");
    const second = await raw.until("Z");
    assert.deepEqual(
      second.map((m) => m.type),
      ["1", "2", "D", "C", "Z"],
    );
    assert.equal(second[2]!.bytes.toString("utf8", 11), "2");
    raw.close();
  });
});

describe("malformed statements under a policy", { timeout: 60_000 }, () => {
  it("end only their own session with 08P01", async () => {
    for (const bad of [
      Buffer.from([0x50, 0, 0, 0, 7, 0x61, 0x62, 0x63]), // Parse whose strings are not terminated
      Buffer.from([0x51, 0, 0, 0, 6, 0x78, 0x79]), // Query without its terminator
    ]) {
      const { raw } = await rawSignIn(gw.port, "reader", await idp.token("reader"));
      raw.send(bad);
      const error = await raw.next();
      assert.equal(error?.fields?.C, "08P01", `${bad.toString("hex")}: ${JSON.stringify(error?.fields)}`);
      await raw.ended;
    }
    const reader = await connectAs("reader");
    assert.equal((await reader.query("SELECT 1 AS ok")).rows[0].ok, 1, "the gateway still serves");
    await reader.end();
  });
});

describe("approval and availability", { timeout: 120_000 }, () => {
  it("refuses a statement that needs approval, saying so", async () => {
    const writer = await connectAs("writer");
    try {
      const r = await outcome(writer.query("DELETE FROM app.orders WHERE id < 10"));
      assert.ok(r !== "ok" && r.code === "42501");
      assert.match(r.message ?? "", /requires approval \(rule "orders-need-approval"\)/);
      assert.equal((await writer.query("UPDATE t SET v = v WHERE id = 1")).rowCount, 1, "other writes are allowed");
    } finally {
      await writer.end();
    }
  });

  it("keeps cached decisions when the policy service dies, refuses new ones, and recovers when it returns", async () => {
    const writer = await connectAs("writer");
    try {
      await writer.query("SELECT v FROM t WHERE id = 1");
      await policy.close();
      assert.equal((await writer.query("SELECT v FROM t WHERE id = 1")).rowCount, 1, "cached decision still applies");
      const fresh = await outcome(writer.query("SELECT c FROM t WHERE id = 2"));
      assert.ok(fresh !== "ok" && fresh.code === "57P03", JSON.stringify(fresh));
      await startPolicy(policyPort);
      let recovered: unknown;
      for (let i = 0; i < 50; i++) {
        recovered = await outcome(writer.query("SELECT c FROM t WHERE id = 2"));
        if (recovered === "ok") break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(recovered, "ok");
    } finally {
      await writer.end();
    }
  });

  it("applies an edited policy file to running sessions within seconds; a broken edit changes nothing", async () => {
    const writer = await connectAs("writer");
    try {
      assert.equal((await writer.query("SELECT id FROM u")).rowCount, 1);
      writeFileSync(rulesFile, RULES.replace("classes: [read, write, copy-in", "classes: [write, copy-in"));
      let refused: unknown = "ok";
      for (let i = 0; i < 100 && refused === "ok"; i++) {
        await new Promise((r) => setTimeout(r, 100));
        refused = await outcome(writer.query("SELECT id FROM u"));
      }
      assert.ok(refused !== "ok" && (refused as { code?: string }).code === "42501", "reads now refused");
      writeFileSync(rulesFile, "rules:\n  - name: broken\n    effect: maybe\n");
      await new Promise((r) => setTimeout(r, 2500));
      const still = await outcome(writer.query("SELECT id FROM u"));
      assert.ok(still !== "ok" && still.code === "42501", "the broken edit changed nothing");
      writeFileSync(rulesFile, RULES);
    } finally {
      await writer.end();
    }
  });
});
