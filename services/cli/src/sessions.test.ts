import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type AuditService, createAuditService, loadAuditConfig } from "@agentgate/audit";
import { eventually, publishAll, type StoreDatabase, storeDatabase } from "@agentgate/audit/testing";
import { ensureAuditStream } from "@agentgate/bus";
import { testSession } from "@agentgate/bus/testing";
import { Effect, SessionEndReason } from "@agentgate/events";
import { type NatsInstance, startNats } from "@agentgate/testkit";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { pino } from "pino";
import { runAudit } from "./audit.ts";
import { runReplay } from "./replay.ts";
import { type Io, runSessions } from "./sessions.ts";
import { agentgate } from "./testing.ts";

const dir = mkdtempSync(join(tmpdir(), "agentgate-audit-cli-"));

/** Runs a command in this process, capturing what it writes. */
async function run(
  command: (args: string[], io: Io) => Promise<number>,
  args: string[],
): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await command(args, {
    out: { write: (text: string) => (out += text) },
    err: { write: (text: string) => (err += text) },
  });
  return { code, out, err };
}

describe("sessions, replay and the audit record from the command line", { timeout: 120_000 }, () => {
  let nats: NatsInstance;
  let nc: NatsConnection;
  let database: StoreDatabase;
  let service: AuditService;
  let config: string;
  /** The log's last position once the story is stored and signed. */
  let head: string;
  const publicKeyFile = join(dir, "audit.pub");
  const hour = 3_600_000;
  const minute = 60_000;
  const alice = testSession({
    subject: "alice",
    target: "app",
    applicationName: "agent-sql",
    startedAt: new Date(Date.now() - 10 * minute),
    stepMs: 250,
  });
  const bob = testSession({ subject: "bob", target: "billing", startedAt: new Date(Date.now() - minute) });
  const earlier = testSession({ subject: "alice", target: "app", startedAt: new Date(Date.now() - 5 * hour) });

  before(async () => {
    // A private nats-server: the ingester consumes the whole audit stream, which other test files publish to.
    [nats, database] = await Promise.all([startNats(), storeDatabase()]);
    const store = await database.openStore();
    await store.close();
    const keys = generateKeyPairSync("ed25519");
    writeFileSync(publicKeyFile, keys.publicKey.export({ type: "spki", format: "pem" }));
    writeFileSync(join(dir, "audit.key"), keys.privateKey.export({ type: "pkcs8", format: "pem" }));
    config = join(dir, "agentgate.yaml");
    writeFileSync(
      config,
      [
        "audit:",
        `  nats: ${nats.url}`,
        `  store: ${database.writerUrl}`,
        `  schema: ${store.schema}`,
        `  readStore: ${database.db.url}`,
        `  publicKey: ${publicKeyFile}`,
        `  signingKey: ${join(dir, "audit.key")}`,
      ].join("\n"),
    );
    service = createAuditService(loadAuditConfig(config), pino({ level: process.env.AGENTGATE_TEST_LOG ?? "silent" }));
    await service.start();

    // The story: alice reads (masked), is refused a DROP, hits an error; bob is still connected; alice earlier.
    nc = await connect({ servers: nats.url });
    await ensureAuditStream(await jetstreamManager(nc), { replicas: 1 });
    const aliceStarted = alice.started();
    const read = alice.received({ sql: "SELECT name, email\n  FROM customers\n LIMIT 5", rule: "analysts-read" });
    const drop = alice.received({ sql: "DROP TABLE orders", effect: Effect.DENY, rule: "no-ddl", classes: ["ddl"] });
    const typo = alice.received({ sql: "SELECT * FROM custmers", rule: "analysts-read" });
    const events = [
      earlier.started(),
      earlier.ended(SessionEndReason.CLIENT_CLOSED),
      aliceStarted,
      read,
      alice.completed(read, {
        rows: 5n,
        commandTag: "SELECT 5",
        durationMicros: 2300n,
        maskedCells: { "public.customers.email": 5n },
      }),
      drop,
      alice.completed(drop, { status: "refused", sqlstate: "42501", rows: 0n, commandTag: "", durationMicros: 40n }),
      typo,
      alice.completed(typo, { status: "error", sqlstate: "42P01", rows: 0n, commandTag: "", durationMicros: 900n }),
      alice.ended(SessionEndReason.CLIENT_CLOSED),
      bob.started(),
    ];
    await publishAll(jetstream(nc), events);
    await eventually("every event is stored", async () => ((await service.store.head())?.position ?? 0n) >= 11n);
    await service.store.checkpoint();
    head = (await service.projector.catchUp()).toString();
  });
  after(async () => {
    await service?.stop();
    await nc?.close();
    await Promise.allSettled([nats?.stop(), database?.drop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it("replays a session as a timeline", async () => {
    const r = await run(runReplay, [alice.sessionId, "--config", config]);
    assert.equal(r.code, 0, r.err);
    const lines = r.out.split("\n");
    assert.equal(lines[0], `session ${alice.sessionId}`);
    assert.equal(lines[1], "principal alice (analysts) issued by https://idp.example.com/");
    assert.equal(lines[2], "target app · worker proxy-1 · client 127.0.0.1:50000 · application agent-sql · tls");
    assert.match(lines[3]!, /^started \S+Z · ended \S+Z \(client_closed\) · 3 statement\(s\)$/);
    assert.deepEqual(lines.slice(5), [
      "OFFSET   #  STATEMENT                                  DECISION               OUTCOME        ROWS  DURATION  MASKED",
      "+0.250s  1  SELECT name, email FROM customers LIMIT 5  allow (analysts-read)  ok             5     2.30ms    5",
      "+0.500s  2  DROP TABLE orders                          deny (no-ddl)          refused 42501  -     40µs",
      "+0.750s  3  SELECT * FROM custmers                     allow (analysts-read)  error 42P01    -     900µs",
      "",
    ]);
  });

  it("says so when there is no such session", async () => {
    const r = await run(runReplay, ["no-such-session", "--config", config]);
    assert.equal(r.code, 1);
    assert.match(r.err, /no session "no-such-session"/);
  });

  it("lists sessions, filtered by principal, target and time", async () => {
    const ids = async (...filters: string[]) => {
      const r = await run(runSessions, ["list", "--config", config, ...filters]);
      assert.equal(r.code, 0, r.err);
      return r.out
        .trim()
        .split("\n")
        .slice(1)
        .map((line) => line.split(/\s+/)[0]);
    };
    assert.deepEqual(await ids(), [bob.sessionId, alice.sessionId, earlier.sessionId]);
    assert.deepEqual(await ids("--principal", "alice"), [alice.sessionId, earlier.sessionId]);
    assert.deepEqual(await ids("--target", "billing"), [bob.sessionId]);
    assert.deepEqual(await ids("--since", "1h"), [bob.sessionId, alice.sessionId]);
    assert.deepEqual(await ids("--principal", "alice", "--since", new Date(Date.now() - hour).toISOString()), [
      alice.sessionId,
    ]);
    const r = await run(runSessions, ["list", "--config", config, "--target", "billing"]);
    assert.match(r.out, /^SESSION +PRINCIPAL +TARGET +STARTED +ENDED +STATEMENTS +CLIENT\n/);
    assert.match(r.out, /bob +billing +\S+Z +open +0 +127\.0\.0\.1:50000\n$/);
    await assert.rejects(run(runSessions, ["list", "--config", config, "--since", "last tuesday"]), /--since must be/);
  });

  it("exports a bundle that verifies offline; one edited byte fails, naming its position", async () => {
    const out = join(dir, "bundle");
    const exported = await run(runAudit, ["export", "--out", out, "--since", "1h", "--config", config]);
    assert.equal(exported.code, 0, exported.err);
    assert.match(exported.out, new RegExp(`^exported ${head} events \\(positions 1\\.\\.${head}, 1 signed checkpoint`));

    const verified = await run(runAudit, ["verify", out, "--public-key", publicKeyFile]);
    assert.equal(verified.code, 0, verified.out);
    assert.match(
      verified.out,
      new RegExp(`^intact: ${head} events, head ${head} [0-9a-f]{64}, 1 checkpoint\\(s\\); signatures verified`),
    );

    // One byte of the fifth event's data, in a copy of the bundle.
    const tampered = join(dir, "tampered");
    cpSync(out, tampered, { recursive: true });
    const file = join(tampered, "events.jsonl");
    const lines = readFileSync(file, "utf8").split("\n");
    const line = lines[4]!;
    const { position } = JSON.parse(line);
    const at = line.indexOf('"data":"') + 20;
    lines[4] = line.slice(0, at) + (line[at] === "A" ? "B" : "A") + line.slice(at + 1);
    writeFileSync(file, lines.join("\n"));
    const broken = await run(runAudit, ["verify", tampered, "--public-key", publicKeyFile]);
    assert.equal(broken.code, 1);
    assert.match(broken.out, new RegExp(`^BROKEN at position ${position}: hash mismatch .*: edited\n$`));
  });

  it("verifies the live store", async () => {
    const r = await run(runAudit, ["verify", "--store", "--config", config]);
    assert.equal(r.code, 0, r.out + r.err);
    assert.match(
      r.out,
      new RegExp(`^intact: ${head} events, head ${head} [0-9a-f]{64}, 1 checkpoint\\(s\\); signatures verified`),
    );
  });

  it("works as the agentgate command: exit codes a script can use", async () => {
    const list = await agentgate(["sessions", "list", "--config", config, "--principal", "bob"]);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, new RegExp(bob.sessionId));
    const broken = await agentgate(["audit", "verify", join(dir, "tampered")]);
    assert.equal(broken.code, 1);
    assert.match(broken.stdout, /^BROKEN at position 5: hash mismatch/);
    const usage = await agentgate(["audit", "verify"]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /verify takes either a bundle directory or --store/);
    const noConfig = await agentgate(["replay", alice.sessionId]);
    assert.equal(noConfig.code, 2);
    assert.match(noConfig.stderr, /pass --config FILE or set AGENTGATE_CONFIG/);
  });
});
