// Approvals end to end: psql holds a DELETE until `agentgate approvals approve` (or deny, or the timeout), with two
// proxy workers and two approval-service instances on one event store.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type ApprovalServer, createApprovalService } from "@agentgate/approval";
import { type AuditService, createAuditService } from "@agentgate/audit";
import { eventually } from "@agentgate/audit/testing";
import { type Approval, ApprovalService, ApprovalState } from "@agentgate/events";
import { createPostgresEventStore, type PostgresEventStore } from "@agentgate/eventstore";
import { type StoreDatabase, storeDatabase } from "@agentgate/eventstore/testing";
import { createClient } from "@agentgate/grpc";
import { createTokenVerifier } from "@agentgate/identity";
import { createPolicyService } from "@agentgate/policy-service";
import { startTestGateway, type TestGateway } from "@agentgate/proxy/testing";
import {
  findBinary,
  type NatsInstance,
  type OidcProviderInstance,
  startNats,
  startOidcProvider,
} from "@agentgate/testkit";
import pg from "pg";
import { pino } from "pino";
import { agentgate } from "./testing.ts";

const RULES = `
rules:
  - name: agents-work
    match: { groups: [agents], classes: [read, write, session, transaction] }
    effect: allow
  - name: deleting-orders-needs-a-dba
    match: { groups: [agents], classes: [write], relations: [orders] }
    effect: require_approval
    approvers: [dbas]
    reason: deleting orders needs a DBA
  - name: ledger-needs-two
    match: { groups: [agents], classes: [write], relations: [ledger] }
    effect: require_approval
    approvers: [dbas]
    approvals: 2
`;

let dir: string;
let idp: OidcProviderInstance;
let storeDb: StoreDatabase;
let stores: PostgresEventStore[] = [];
const services: { server: ApprovalServer; address: string }[] = [];
let policy: ReturnType<typeof createPolicyService>;
const gateways: TestGateway[] = [];
/** A third worker whose held statements time out quickly. */
let hasty: TestGateway;
let nats: NatsInstance;
let audit: AuditService;
let configFile: string;
let policyAddress: string;
/** The session of the first test, replayed at the end. */
let approvedSession: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "agentgate-approvals-"));
  idp = await startOidcProvider({
    audience: "agentgate",
    clients: [
      { clientId: "agent", clientSecret: "s", groups: ["agents"] },
      { clientId: "agent-dba", clientSecret: "s", groups: ["agents", "dbas"] },
      { clientId: "dba1", clientSecret: "s", groups: ["dbas"] },
      { clientId: "dba2", clientSecret: "s", groups: ["dbas"] },
      { clientId: "analyst", clientSecret: "s", groups: ["analysts"] },
    ],
  });
  storeDb = await storeDatabase();
  const first = await storeDb.openStore();
  stores = [first, createPostgresEventStore({ connectionString: storeDb.writerUrl, schema: first.schema })];
  const verifier = await createTokenVerifier({
    issuer: idp.issuer,
    audience: "agentgate",
    groupsClaim: "groups",
    allowInsecureLoopbackIssuer: true,
  });
  for (const store of stores) {
    const server = createApprovalService({ store, listen: "127.0.0.1:0", verifier, sweepIntervalMs: 200 });
    const { address } = await server.listen();
    services.push({ server, address });
  }
  // The audit pipeline on the same store: statements come in through the bus, approvals from the service.
  nats = await startNats();
  const auditConfig = {
    nats: nats.url,
    store: storeDb.writerUrl,
    schema: first.schema,
    readStore: storeDb.db.url,
    readSchema: "agentgate_read",
    durable: "audit-ingester",
    replicas: 1,
    livenessIntervalMs: 5000,
  };
  audit = createAuditService(auditConfig, pino({ level: "warn" }));
  await audit.start();
  configFile = join(dir, "agentgate.yaml");
  writeFileSync(
    configFile,
    [
      "audit:",
      `  nats: ${nats.url}`,
      `  store: ${JSON.stringify(storeDb.writerUrl)}`,
      `  schema: ${first.schema}`,
      `  readStore: ${JSON.stringify(storeDb.db.url)}`,
      "",
    ].join("\n"),
  );
  const rulesFile = join(dir, "policy.yaml");
  writeFileSync(rulesFile, RULES);
  policy = createPolicyService({ rulesFile, listen: "127.0.0.1:0" });
  const policyPort = (await policy.listen()).port;
  policyAddress = `127.0.0.1:${policyPort}`;
  // Two workers in front of one database; each asks its own approval-service instance.
  for (const [i, service] of services.entries()) {
    gateways.push(
      await startTestGateway({
        proxy: {
          allowPlaintextLoopback: true,
          policy: { address: `127.0.0.1:${policyPort}` },
          approval: { address: service.address, timeoutMs: 90_000 },
          audit: { nats: nats.url },
        },
        identity: { issuer: idp.issuer, audience: "agentgate" },
        ...(i === 0 ? {} : { target: { url: gateways[0]!.directUrl } }),
      }),
    );
  }
  hasty = await startTestGateway({
    proxy: {
      allowPlaintextLoopback: true,
      policy: { address: `127.0.0.1:${policyPort}` },
      approval: { address: services[0]!.address, timeoutMs: 2000 },
    },
    identity: { issuer: idp.issuer, audience: "agentgate" },
    target: { url: gateways[0]!.directUrl },
  });
  const direct = new pg.Client({ connectionString: gateways[0]!.directUrl });
  await direct.connect();
  await direct.query(`
    CREATE TABLE orders (id int PRIMARY KEY, note text);
    INSERT INTO orders SELECT i, 'order ' || i FROM generate_series(1, 100) i;
    CREATE TABLE ledger (id int PRIMARY KEY);
    INSERT INTO ledger SELECT generate_series(1, 10);
    ANALYZE orders;`);
  await direct.end();
});

after(async () => {
  await hasty?.close();
  for (const gw of gateways.reverse()) await gw.close();
  await policy?.close();
  for (const { server } of services) await server.close();
  await audit?.stop();
  await nats?.stop();
  for (const store of stores) await store.close();
  await storeDb?.drop();
  await idp?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function connectAs(clientId: string, worker = 0, gateway = gateways[worker]!): Promise<pg.Client> {
  const client = new pg.Client({
    host: "127.0.0.1",
    port: gateway.port,
    user: clientId,
    database: "app",
    password: await idp.token(clientId),
  });
  await client.connect();
  return client;
}

const approvalClient = (instance = 0) => createClient(ApprovalService, services[instance]!.address);

/** The one pending approval whose statement contains `text`, once it shows up. */
async function pendingFor(text: string, instance = 0): Promise<Approval> {
  const client = approvalClient(instance);
  try {
    return await eventually(`a pending approval for ${text}`, async () => {
      const { approvals } = await client.list({ states: [] });
      return approvals.find((a) => a.sql.includes(text));
    });
  } finally {
    client.close();
  }
}

async function cli(args: string[], clientId?: string, instance = 0) {
  return agentgate(
    ["approvals", ...args, "--address", services[instance]!.address],
    clientId ? { AGENTGATE_TOKEN: await idp.token(clientId) } : {},
  );
}

async function orderCount(): Promise<number> {
  const direct = new pg.Client({ connectionString: gateways[0]!.directUrl });
  await direct.connect();
  try {
    return (await direct.query("SELECT count(*)::int AS n FROM orders")).rows[0].n;
  } finally {
    await direct.end();
  }
}

describe("approvals", { timeout: 180_000 }, () => {
  it("psql's DELETE waits until an approver approves it with the CLI; then the same call returns DELETE 9", async () => {
    const psql = spawn(
      findBinary("psql", "apt-get install -y postgresql-client"),
      [
        "-X",
        "-h",
        "127.0.0.1",
        "-p",
        String(gateways[0]!.port),
        "-U",
        "agent",
        "-d",
        "app",
        "-c",
        "DELETE FROM orders WHERE id < 10",
      ],
      { env: { PATH: process.env.PATH, PGPASSWORD: await idp.token("agent"), PGSSLMODE: "disable" } },
    );
    let stdout = "";
    let stderr = "";
    psql.stdout.on("data", (chunk: Buffer) => (stdout += chunk));
    psql.stderr.on("data", (chunk: Buffer) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => psql.on("close", resolve));
    try {
      const approval = await pendingFor("DELETE FROM orders WHERE id < 10");
      approvedSession = approval.sessionId;
      assert.equal(approval.estimatedRows > 0n, true, "the planner's estimate is in the request");
      assert.deepEqual(approval.objects, ["orders"]);
      assert.equal(approval.requester?.subject, "agent");
      assert.equal(await orderCount(), 100, "nothing ran while it waits");
      assert.equal(psql.exitCode, null, "psql is still waiting");
      const shown = await cli(["show", approval.id]);
      assert.match(shown.stdout, /statement {2}DELETE FROM orders WHERE id < 10/);
      assert.match(shown.stdout, /estimate {3}\d+ rows; changes orders/);
      const approved = await cli(["approve", approval.id], "dba1");
      assert.equal(approved.code, 0, approved.stderr);
      assert.equal(await exited, 0, stderr);
      assert.equal(stdout, "DELETE 9\n");
      assert.equal(await orderCount(), 91);
    } finally {
      psql.kill();
    }
  });

  it("a denial tells who denied and why; nothing runs", async () => {
    const agent = await connectAs("agent");
    try {
      const held = agent.query("DELETE FROM orders WHERE id < 20");
      held.catch(() => undefined); // asserted below
      const approval = await pendingFor("DELETE FROM orders WHERE id < 20");
      const denied = await cli(["deny", approval.id, "--reason", "not during the audit"], "dba2");
      assert.equal(denied.code, 0, denied.stderr);
      await assert.rejects(held, (e: Error & { code?: string }) => {
        assert.equal(e.code, "42501");
        assert.match(e.message, /denied by dba2 .*: not during the audit/);
        return true;
      });
      assert.equal(await orderCount(), 91);
    } finally {
      await agent.end();
    }
  });

  it("a request nobody decides times out with a clear error; nothing runs", async () => {
    const agent = await connectAs("agent", 0, hasty);
    try {
      await assert.rejects(agent.query("DELETE FROM orders WHERE id < 30"), (e: Error & { code?: string }) => {
        assert.equal(e.code, "57014");
        assert.match(e.message, /was not decided within 2 s/);
        return true;
      });
      assert.equal(await orderCount(), 91);
      const all = await cli(["list", "--all"]);
      assert.match(all.stdout, /expired\s+agent\s+app/);
    } finally {
      await agent.end();
    }
  });

  it("refuses self-approval and approvers outside the group; a two-approver rule runs after the second", async () => {
    const requester = await connectAs("agent-dba");
    try {
      const held = requester.query("DELETE FROM ledger WHERE id < 4");
      const approval = await pendingFor("DELETE FROM ledger WHERE id < 4");
      const self = await cli(["approve", approval.id], "agent-dba");
      assert.equal(self.code, 1);
      assert.match(self.stderr, /cannot decide its own request/);
      const outsider = await cli(["approve", approval.id], "analyst");
      assert.equal(outsider.code, 1);
      assert.match(outsider.stderr, /only members of dbas/);
      assert.equal((await cli(["approve", approval.id], "dba1")).code, 0);
      const again = await cli(["approve", approval.id], "dba1");
      assert.match(again.stderr, /already decided/);
      assert.match((await cli(["show", approval.id])).stdout, /pending \(1\/2 approvals/);
      // Approved through the other instance: the first worker's session still resumes.
      assert.equal((await cli(["approve", approval.id], "dba2", 1)).code, 0);
      assert.equal((await held).rowCount, 3);
    } finally {
      await requester.end();
    }
  });

  it("an approval made on either instance resumes a statement held on either worker", async () => {
    for (const [worker, instance] of [
      [0, 1],
      [1, 0],
      [1, 1],
    ] as const) {
      const agent = await connectAs("agent", worker);
      try {
        const sql = `UPDATE orders SET note = 'w${worker}i${instance}' WHERE id = 50`;
        const held = agent.query(sql);
        const approval = await pendingFor(sql, instance);
        assert.equal((await cli(["approve", approval.id], "dba1", instance)).code, 0);
        assert.equal((await held).rowCount, 1);
      } finally {
        await agent.end();
      }
    }
  });

  it("a cancel or a disconnect withdraws the request", async () => {
    const agent = await connectAs("agent");
    const held = agent.query("DELETE FROM orders WHERE id = 60");
    held.catch(() => undefined); // asserted below
    const approval = await pendingFor("DELETE FROM orders WHERE id = 60");
    // node-postgres sends a CancelRequest with the session's key over a new connection.
    const canceller = new pg.Client({ host: "127.0.0.1", port: gateways[0]!.port }) as unknown as {
      cancel(client: pg.Client, query: unknown): void;
    };
    canceller.cancel(agent, (agent as unknown as { activeQuery: unknown }).activeQuery);
    await assert.rejects(held, (e: Error & { code?: string }) => e.code === "57014");
    const client = approvalClient();
    try {
      await eventually(
        "withdrawn",
        async () => (await client.get({ id: approval.id })).state === ApprovalState.WITHDRAWN,
      );
      assert.equal((await agent.query("SELECT 1 AS one")).rows[0].one, 1);
      const second = agent.query("DELETE FROM orders WHERE id = 61");
      second.catch(() => undefined);
      const next = await pendingFor("DELETE FROM orders WHERE id = 61");
      await agent.end();
      await eventually(
        "withdrawn on disconnect",
        async () => (await client.get({ id: next.id })).state === ApprovalState.WITHDRAWN,
      );
    } finally {
      client.close();
    }
    assert.equal(await orderCount(), 91);
  });

  it("every step is in the event store and in agentgate replay: requested with estimate, who decided, when, outcome", async () => {
    const replay = await eventually("the approval and the statement in the read models", async () => {
      const result = await agentgate(["replay", approvedSession, "--config", configFile, "--width", "80"]);
      return (
        /approved by dba1 via cli/.test(result.stdout) &&
        /DELETE FROM orders WHERE id < 10 .* ok .* 9 /.test(result.stdout) &&
        result
      );
    });
    assert.match(
      replay.stdout,
      /requested: DELETE FROM orders WHERE id < 10 \(rule deleting-orders-needs-a-dba; estimate \d+ row\(s\), changes orders; 1 of dbas\)/,
    );
    assert.match(replay.stdout, /\+\d+\.\d+s\s+approved by dba1 via cli/);
    assert.match(replay.stdout, /outcome: approved/);
    assert.match(
      replay.stdout,
      /DELETE FROM orders WHERE id < 10\s+require_approval \(deleting-orders-needs-a-dba\)\s+ok\s+9/,
    );
  });

  it("deferred mode: refused at once with the approval id; after approval (and a worker restart) it runs exactly once", async () => {
    const start = () =>
      startTestGateway({
        proxy: {
          allowPlaintextLoopback: true,
          policy: { address: policyAddress },
          approval: { address: services[1]!.address, mode: "deferred", timeoutMs: 60_000 },
        },
        identity: { issuer: idp.issuer, audience: "agentgate" },
        target: { url: gateways[0]!.directUrl },
      });
    let deferred = await start();
    try {
      const sql = "DELETE FROM orders WHERE id BETWEEN 70 AND 74";
      let agent = await connectAs("agent", 0, deferred);
      let id = "";
      await assert.rejects(agent.query(sql), (e: Error & { code?: string; hint?: string }) => {
        assert.equal(e.code, "42501");
        id = /approval ([0-9a-f-]{36}) requested/.exec(e.message)?.[1] ?? "";
        assert.match(e.hint ?? "", /run the same statement again/);
        return id !== "";
      });
      await agent.end();
      assert.equal((await cli(["approve", id], "dba1", 0)).code, 0);
      // The worker restarts: the approval lives in the event store, not in the worker.
      await deferred.close();
      deferred = await start();
      agent = await connectAs("agent", 0, deferred);
      await assert.rejects(
        agent.query(`${sql} AND true`),
        /approval [0-9a-f-]{36} requested/,
        "only that exact statement",
      );
      const ran = await eventually("the approval reaches the other instance", async () => {
        try {
          return await agent.query(sql);
        } catch {
          return undefined;
        }
      });
      assert.equal(ran.rowCount, 5);
      await assert.rejects(agent.query(sql), /approval [0-9a-f-]{36} requested/, "it runs once");
      await agent.end();
      assert.match((await cli(["show", id])).stdout, /state {6}used/);
    } finally {
      await deferred.close();
    }
  });
});
