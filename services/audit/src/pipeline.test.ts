import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { StatementReceivedSchema } from "@agentgate/events";
import { startTestGateway, type TestGateway } from "@agentgate/proxy/testing";
import {
  type NatsInstance,
  type OidcProviderInstance,
  type SelfSignedCert,
  selfSignedCert,
  startNats,
  startOidcProvider,
} from "@agentgate/testkit";
import { fromBinary } from "@bufbuild/protobuf";
import { pino } from "pino";
import { type AuditService, createAuditService, createReadModel } from "./index.ts";
import { type StoreDatabase, storeDatabase } from "./testing/store-database.ts";

const bin = new URL("../../cli/bin/agentgate.js", import.meta.url).pathname;
let nats: NatsInstance;
let idp: OidcProviderInstance;
let cert: SelfSignedCert;
let storeDb: StoreDatabase;
let gw: TestGateway;
let audit: AuditService;
let dir: string;
let config: string;

before(async () => {
  [nats, idp, cert, storeDb] = await Promise.all([
    startNats(),
    startOidcProvider({
      audience: "agentgate",
      clients: [{ clientId: "agent-7", clientSecret: "agent-7-secret", groups: ["analysts", "oncall"] }],
    }),
    selfSignedCert({ commonName: "localhost" }),
    storeDatabase(),
  ]);
  const migrated = await storeDb.openStore(); // creates schema store_1 and grants the writer
  await migrated.close();
  const auditConfig = {
    nats: nats.url,
    store: storeDb.writerUrl,
    schema: "store_1",
    readStore: storeDb.db.url,
    readSchema: "agentgate_read",
    durable: "audit-ingester",
    replicas: 1,
    livenessIntervalMs: 5000,
  };
  audit = createAuditService(auditConfig, pino({ level: "warn" }));
  gw = await startTestGateway({
    proxy: { tls: { cert: cert.certPath, key: cert.keyPath }, audit: { nats: nats.url } },
    identity: { issuer: idp.issuer, audience: "agentgate" },
  });
  await audit.start();
  dir = mkdtempSync(join(tmpdir(), "agentgate-pipeline-"));
  config = join(dir, "agentgate.yaml");
  writeFileSync(
    config,
    [
      "audit:",
      `  nats: ${nats.url}`,
      `  store: ${JSON.stringify(storeDb.writerUrl)}`,
      "  schema: store_1",
      `  readStore: ${JSON.stringify(storeDb.db.url)}`,
      "",
    ].join("\n"),
  );
});

after(async () => {
  await gw.close();
  await audit.stop();
  await Promise.all([nats.stop(), idp.stop(), cert.cleanup(), storeDb.drop()]);
  rmSync(dir, { recursive: true, force: true });
});

function run(command: string, args: string[], env: NodeJS.ProcessEnv, input?: string) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const child = execFile(
      command,
      args,
      { env: { PATH: process.env.PATH, ...env }, timeout: 30_000 },
      (e, stdout, stderr) => resolve({ code: e ? ((e as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin?.end(input ?? "");
  });
}

describe("a psql session in the audit record", { timeout: 120_000 }, () => {
  it("is in the store in order with the principal, and in agentgate replay within a second of its end", async () => {
    const statements = [
      "CREATE TABLE visits (id int PRIMARY KEY, note text);",
      ...Array.from({ length: 17 }, (_, i) => `INSERT INTO visits VALUES (${i + 1}, 'visit ${i + 1}');`),
      "UPDATE visits SET note = upper(note) WHERE id < 5;",
      "SELECT count(*) FROM visits;",
    ];
    assert.equal(statements.length, 20);
    const psql = await run(
      "psql",
      ["-X", "-q", "-v", "ON_ERROR_STOP=1", `postgresql://agent-7@127.0.0.1:${gw.port}/app?sslmode=require`],
      { PGPASSWORD: await idp.token("agent-7") },
      statements.join("\n"),
    );
    const ended = Date.now();
    assert.equal(psql.code, 0, psql.stderr);

    const read = createReadModel({ connectionString: storeDb.db.url });
    let session: Awaited<ReturnType<typeof read.listSessions>>[number] | undefined;
    let seen = 0;
    try {
      while (Date.now() - ended < 10_000) {
        session = (await read.listSessions({})).find((s) => s.principal.clientId === "agent-7");
        seen = session ? (await read.statements(session.sessionId)).length : 0;
        if (session?.endedAt && seen === 20) break;
        await new Promise((r) => setTimeout(r, 25));
      }
    } finally {
      await read.close();
    }
    const visibleAfter = Date.now() - ended;
    assert.ok(session, "the session is in the read model");
    assert.equal(seen, 20);
    assert.ok(session.endedAt, "and it has ended");
    assert.ok(visibleAfter < 1000, `in the read model ${visibleAfter} ms after psql ended`);
    console.log(`the session was in the read model ${visibleAfter} ms after psql ended`);
    assert.deepEqual([...session.principal.groups].sort(), ["analysts", "oncall"]);

    const rows = await storeDb.admin<{ revision: string; type: string; data: Buffer }>(
      "SELECT revision, type, data FROM store_1.events WHERE stream = $1 ORDER BY revision",
      [`session-${session.sessionId}`],
    );
    const received = rows
      .filter((r) => r.type === "agentgate.v1.StatementReceived")
      .map((r) => fromBinary(StatementReceivedSchema, r.data));
    assert.deepEqual(
      received.map((r) => r.sql),
      statements,
      "every statement, in order",
    );
    for (const r of received) {
      assert.equal(r.meta?.principal?.clientId, "agent-7");
      assert.deepEqual([...(r.meta?.principal?.groups ?? [])].sort(), ["analysts", "oncall"]);
      assert.ok((r.meta?.principal?.subject ?? "").length > 0);
    }

    const replay = await run(process.execPath, [bin, "replay", session.sessionId, "--config", config], {});
    assert.equal(replay.code, 0, replay.stderr);
    assert.match(replay.stdout, /INSERT INTO visits VALUES \(17, 'visit 17'\)/);
    assert.match(replay.stdout, /UPDATE visits SET note = upper\(note\) WHERE id < 5;\s+-\s+ok\s+4\s/);
    assert.match(replay.stdout, /20 statement\(s\)/);
  });

  it("exports a day that holds every session `sessions list` shows for it, and verifies offline", async () => {
    // A second session, so the day has more than one.
    const psql = await run(
      "psql",
      ["-X", "-q", "-c", "SELECT 1", `postgresql://agent-7@127.0.0.1:${gw.port}/app?sslmode=require`],
      { PGPASSWORD: await idp.token("agent-7") },
    );
    assert.equal(psql.code, 0, psql.stderr);
    const day = new Date().toISOString().slice(0, 10);
    const since = `${day}T00:00:00Z`;
    const until = new Date(Date.parse(since) + 86_400_000).toISOString();
    const read = createReadModel({ connectionString: storeDb.db.url });
    let listed: string[] = [];
    try {
      for (let i = 0; i < 100; i++) {
        const sessions = await read.listSessions({ since: new Date(since) });
        listed = sessions.filter((s) => s.endedAt !== null).map((s) => s.sessionId);
        if (listed.length >= 2) break;
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      await read.close();
    }
    assert.ok(listed.length >= 2, `sessions listed for ${day}: ${listed.length}`);
    const out = join(dir, "bundle");
    const exported = await run(
      process.execPath,
      [bin, "audit", "export", "--out", out, "--since", since, "--until", until, "--config", config],
      {},
    );
    assert.equal(exported.code, 0, exported.stderr);
    const streams = new Set(
      readFileSync(join(out, "events.jsonl"), "utf8")
        .split("\n")
        .filter(Boolean)
        .map((line) => (JSON.parse(line) as { stream: string }).stream),
    );
    for (const id of listed) assert.ok(streams.has(`session-${id}`), `session ${id} is in the export`);
    // Offline: only the directory, no config, no database, no bus.
    const verified = await run(process.execPath, [bin, "audit", "verify", out], {});
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    assert.match(verified.stdout, /^intact: /m);
  });
});
