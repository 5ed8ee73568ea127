// JIT grants end to end: an agent asks for time-boxed DDL, a DBA approves it, the policy allows it until it is
// revoked or expires.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type ApprovalServer, createApprovalService } from "@agentgate/approval";
import { eventually } from "@agentgate/audit/testing";
import { ApprovalService } from "@agentgate/events";
import type { PostgresEventStore } from "@agentgate/eventstore";
import { type StoreDatabase, storeDatabase } from "@agentgate/eventstore/testing";
import { createClient } from "@agentgate/grpc";
import { createTokenVerifier } from "@agentgate/identity";
import { createPolicyService } from "@agentgate/policy-service";
import { startTestGateway, type TestGateway } from "@agentgate/proxy/testing";
import { type OidcProviderInstance, startOidcProvider } from "@agentgate/testkit";
import { Metadata } from "@grpc/grpc-js";
import pg from "pg";
import { agentgate } from "./testing.ts";

const RULES = `
rules:
  - name: agents-read
    match: { groups: [agents], classes: [read, session, transaction] }
    effect: allow
  - name: never-drop-audit
    match: { groups: [agents], classes: [ddl], relations: [audit_log] }
    effect: deny
`;

let dir: string;
let idp: OidcProviderInstance;
let storeDb: StoreDatabase;
let store: PostgresEventStore;
let approvals: ApprovalServer;
let address: string;
let policy: ReturnType<typeof createPolicyService>;
let gw: TestGateway;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "agentgate-grants-"));
  idp = await startOidcProvider({
    audience: "agentgate",
    clients: [
      { clientId: "agent", clientSecret: "s", groups: ["agents"] },
      { clientId: "dba1", clientSecret: "s", groups: ["dbas"] },
    ],
  });
  storeDb = await storeDatabase();
  store = await storeDb.openStore();
  const verifier = await createTokenVerifier({
    issuer: idp.issuer,
    audience: "agentgate",
    groupsClaim: "groups",
    allowInsecureLoopbackIssuer: true,
  });
  approvals = createApprovalService({ store, listen: "127.0.0.1:0", verifier, grantApprovers: ["dbas"] });
  address = (await approvals.listen()).address;
  const rulesFile = join(dir, "policy.yaml");
  writeFileSync(rulesFile, RULES);
  policy = createPolicyService({ rulesFile, listen: "127.0.0.1:0", grantsFrom: address });
  const policyPort = (await policy.listen()).port;
  gw = await startTestGateway({
    proxy: { allowPlaintextLoopback: true, policy: { address: `127.0.0.1:${policyPort}` } },
    identity: { issuer: idp.issuer, audience: "agentgate" },
  });
  const direct = new pg.Client({ connectionString: gw.directUrl });
  await direct.connect();
  await direct.query("CREATE TABLE audit_log (x int)");
  await direct.end();
});

after(async () => {
  await gw?.close();
  await policy?.close();
  await approvals?.close();
  await store?.close();
  await storeDb?.drop();
  await idp?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function agentRuns(sql: string): Promise<"ok" | string> {
  const client = new pg.Client({
    host: "127.0.0.1",
    port: gw.port,
    user: "agent",
    database: "app",
    password: await idp.token("agent"),
  });
  await client.connect();
  try {
    await client.query(sql);
    return "ok";
  } catch (error) {
    return (error as Error).message;
  } finally {
    await client.end();
  }
}

const as = async (clientId: string) => ({ AGENTGATE_TOKEN: await idp.token(clientId) });

describe("JIT grants", { timeout: 120_000 }, () => {
  it("an approved grant allows what no rule allows, until it is revoked; explicit deny rules still hold", async () => {
    assert.match(await agentRuns("CREATE TABLE jit (x int)"), /no rule allows ddl on app/);
    const requested = await agentgate(
      [
        "grants",
        "request",
        "--target",
        "app",
        "--classes",
        "ddl",
        "--minutes",
        "10",
        "--reason",
        "add a table",
        "--address",
        address,
      ],
      await as("agent"),
    );
    assert.equal(requested.code, 0, requested.stderr);
    const id = /approval ([0-9a-f-]{36})/.exec(requested.stdout)?.[1] ?? "";
    const self = await agentgate(["approvals", "approve", id, "--address", address], await as("agent"));
    assert.match(self.stderr, /only members of dbas|own request/);
    const approved = await agentgate(["approvals", "approve", id, "--address", address], await as("dba1"));
    assert.equal(approved.code, 0, approved.stderr);
    await eventually("the grant applies", async () => (await agentRuns("CREATE TABLE jit (x int)")) === "ok");
    assert.match(await agentRuns("DROP TABLE audit_log"), /never-drop-audit/, "an explicit deny rule still wins");
    const listed = await agentgate(["grants", "list", "--address", address]);
    assert.match(listed.stdout, new RegExp(`${id}\\s+agent\\s+app\\s+ddl\\s+until `));

    const notAllowed = await agentgate(
      ["grants", "revoke", id, "--reason", "mine", "--address", address],
      await as("agent"),
    );
    assert.match(notAllowed.stderr, /only grant approvers may revoke/);
    const revoked = await agentgate(
      ["grants", "revoke", id, "--reason", "done", "--address", address],
      await as("dba1"),
    );
    assert.equal(revoked.code, 0, revoked.stderr);
    await eventually("the grant no longer applies", async () =>
      /no rule allows ddl on app/.test(await agentRuns("DROP TABLE jit")),
    );
  });

  it("a grant expires on time", async () => {
    const client = createClient(ApprovalService, address);
    try {
      const agent = new Metadata();
      agent.set("authorization", `Bearer ${await idp.token("agent")}`);
      const dba = new Metadata();
      dba.set("authorization", `Bearer ${await idp.token("dba1")}`);
      const request = await client.requestGrant(
        { target: "app", classes: ["ddl"], seconds: 3, reason: "quick" },
        { metadata: agent },
      );
      await client.approve({ id: request.id, via: "api" }, { metadata: dba });
      await eventually("the grant applies", async () => (await agentRuns("DROP TABLE jit")) === "ok");
      await eventually("the grant has expired", async () =>
        /no rule allows ddl on app/.test(await agentRuns("CREATE TABLE jit2 (x int)")),
      );
      assert.equal((await client.listGrants({})).grants.length, 0);
    } finally {
      client.close();
    }
  });
});
