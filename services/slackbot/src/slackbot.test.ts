// The Slack bot end to end: two real Bolt apps (our signed receiver) against a local stand-in for Slack's Web API,
// the approval service on a real event store, a gateway holding a psql-style statement, and signed interaction
// payloads posted the way Slack posts them.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type ApprovalServer, createApprovalService } from "@agentgate/approval";
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
import { pino } from "pino";
import { createSlackBot, type SlackBot } from "./bot.ts";

const SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5";
const CHANNEL = "C0APPROVALS";

interface Call {
  method: string;
  args: Record<string, unknown>;
  result: Record<string, unknown>;
}

/** Slack's Web API as far as the bot uses it: records every call and answers like Slack. */
async function startSlackStandIn(): Promise<{ url: string; calls: Call[]; close(): Promise<void> }> {
  const calls: Call[] = [];
  let ts = 1_700_000_000;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const method = (req.url ?? "").replace(/^\/api\//, "").split("?")[0]!;
      const raw = Buffer.concat(chunks).toString("utf8");
      const args: Record<string, unknown> = String(req.headers["content-type"]).includes("json")
        ? JSON.parse(raw || "{}")
        : Object.fromEntries(
            // The Web API client sends blocks, views and the like as JSON text; everything else is a string.
            [...new URLSearchParams(raw)].map(([k, v]) => [k, /^[[{]/.test(v) ? JSON.parse(v) : v]),
          );
      const body: Record<string, unknown> = { ok: true };
      calls.push({ method, args, result: body });
      if (method === "auth.test")
        Object.assign(body, { user_id: "UBOT", team_id: "T1", bot_id: "BBOT", user: "agentgate" });
      if (method === "chat.postMessage") Object.assign(body, { channel: args.channel, ts: `${ts++}.000100` });
      if (method === "chat.update") Object.assign(body, { channel: args.channel, ts: args.ts });
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/api/`,
    calls,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

const RULES = `
rules:
  - name: agents-work
    match: { groups: [agents], classes: [read, write, session, transaction] }
    effect: allow
  - name: orders-need-a-dba
    match: { groups: [agents], classes: [write], relations: [orders] }
    effect: require_approval
    approvers: [dbas]
`;

let dir: string;
let idp: OidcProviderInstance;
let storeDb: StoreDatabase;
let store: PostgresEventStore;
let approvalService: ApprovalServer;
let approvalAddress: string;
let policy: ReturnType<typeof createPolicyService>;
let gw: TestGateway;
let slack: Awaited<ReturnType<typeof startSlackStandIn>>;
const bots: { bot: SlackBot; port: number }[] = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "agentgate-slackbot-"));
  idp = await startOidcProvider({
    audience: "agentgate",
    clients: [
      { clientId: "agent", clientSecret: "s", groups: ["agents"] },
      { clientId: "slackbot", clientSecret: "s", groups: [] },
      { clientId: "impostor", clientSecret: "s", groups: ["dbas"] },
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
  approvalService = createApprovalService({ store, listen: "127.0.0.1:0", verifier, delegates: ["slackbot"] });
  approvalAddress = (await approvalService.listen()).address;
  const rulesFile = join(dir, "policy.yaml");
  writeFileSync(rulesFile, RULES);
  policy = createPolicyService({ rulesFile, listen: "127.0.0.1:0" });
  const policyPort = (await policy.listen()).port;
  gw = await startTestGateway({
    proxy: {
      allowPlaintextLoopback: true,
      policy: { address: `127.0.0.1:${policyPort}` },
      approval: { address: approvalAddress, timeoutMs: 90_000 },
    },
    identity: { issuer: idp.issuer, audience: "agentgate" },
  });
  const direct = new pg.Client({ connectionString: gw.directUrl });
  await direct.connect();
  await direct.query(
    "CREATE TABLE orders (id int PRIMARY KEY, note text); INSERT INTO orders SELECT i, 'n' || i FROM generate_series(1, 50) i",
  );
  await direct.end();
  slack = await startSlackStandIn();
  // Two bot instances: either may post a request, any updates its message, clicks reach either.
  for (let i = 0; i < 2; i++) {
    const bot = createSlackBot({
      approvalAddress,
      credentials: () => idp.token("slackbot"),
      signingSecret: SIGNING_SECRET,
      botToken: "xoxb-test",
      apiUrl: slack.url,
      channel: CHANNEL,
      users: {
        UDBA1: { subject: "dba1", groups: ["dbas"] },
        UDBA2: { subject: "dba2", groups: ["dbas"] },
        UAGENT: { subject: "agent", groups: ["dbas"] },
        UANALYST: { subject: "ann", groups: ["analysts"] },
      },
      issuer: idp.issuer,
      logger: pino({ level: process.env.AGENTGATE_TEST_LOG ?? "silent" }),
    });
    bots.push({ bot, port: (await bot.start(0)).port });
  }
});

after(async () => {
  for (const { bot } of bots) await bot.stop();
  await slack?.close();
  await gw?.close();
  await policy?.close();
  await approvalService?.close();
  await store?.close();
  await storeDb?.drop();
  await idp?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function eventually<T>(what: string, check: () => T | undefined | false, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting until ${what} (slack calls: ${slack.calls.map((c) => c.method).join(", ")})`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function connectAgent(): Promise<pg.Client> {
  const client = new pg.Client({
    host: "127.0.0.1",
    port: gw.port,
    user: "agent",
    database: "app",
    password: await idp.token("agent"),
  });
  await client.connect();
  return client;
}

/** The message that shows a statement, once the bots settled: posted, minus duplicates deleted. */
async function messageFor(
  text: string,
): Promise<{ channel: string; ts: string; blocks: unknown[]; approvalId: string }> {
  return eventually(`one message shows ${text}`, () => {
    const posted = slack.calls.filter(
      (c) =>
        c.method === "chat.postMessage" && JSON.stringify(c.args.blocks).includes(JSON.stringify(text).slice(1, -1)),
    );
    const deleted = new Set(slack.calls.filter((c) => c.method === "chat.delete").map((c) => c.args.ts));
    const live = posted.filter((c) => !deleted.has(c.result.ts));
    if (live.length !== 1) return undefined;
    const ts = String(live[0]!.result.ts);
    const blocks = live[0]!.args.blocks as { type: string; elements?: { action_id?: string; value?: string }[] }[];
    const approvalId = blocks.find((b) => b.type === "actions")?.elements?.[0]?.value ?? "";
    return { channel: String(live[0]!.args.channel), ts, blocks, approvalId };
  });
}

/** Posts an interaction payload to a bot as Slack does: form-encoded, signed over `v0:timestamp:body`. */
async function interact(
  port: number,
  payload: unknown,
  sign: { secret?: string; timestamp?: number } = {},
): Promise<{ status: number; body: string; replay: () => Promise<{ status: number }> }> {
  const body = `payload=${encodeURIComponent(JSON.stringify(payload))}`;
  const timestamp = sign.timestamp ?? Math.floor(Date.now() / 1000);
  const signature = `v0=${createHmac("sha256", sign.secret ?? SIGNING_SECRET)
    .update(`v0:${timestamp}:${body}`)
    .digest("hex")}`;
  const send = async () => {
    const response = await fetch(`http://127.0.0.1:${port}/slack/events`, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": String(timestamp),
        "x-slack-signature": signature,
      },
      body,
    });
    return { status: response.status, body: await response.text() };
  };
  const first = await send();
  return { ...first, replay: send };
}

function click(action: "approve" | "deny", approvalId: string, user: string, message: { channel: string; ts: string }) {
  return {
    type: "block_actions",
    team: { id: "T1" },
    user: { id: user },
    api_app_id: "A1",
    token: "legacy",
    trigger_id: `trigger-${Math.random()}`,
    channel: { id: message.channel },
    container: { type: "message", message_ts: message.ts, channel_id: message.channel },
    message: { ts: message.ts },
    actions: [
      { type: "button", action_id: action, block_id: "b", value: approvalId, action_ts: String(Date.now() / 1000) },
    ],
  };
}

describe("the slack bot", { timeout: 180_000 }, () => {
  it("posts a request once, as literal text: a statement's Slack markup and mentions cannot format or ping", async () => {
    const agent = await connectAgent();
    const sql =
      "UPDATE orders SET note = '<!channel> <@U0BOSS> *urgent* <https://evil.example|click> &amp;' WHERE id = 1";
    try {
      const held = agent.query(sql);
      held.catch(() => undefined);
      const message = await messageFor(sql);
      const preformatted = JSON.stringify(message.blocks);
      assert.ok(
        preformatted.includes(JSON.stringify({ type: "text", text: sql })),
        "the statement verbatim, preformatted",
      );
      // No block carries mrkdwn: every text object that shows request data is plain_text or rich text.
      assert.ok(!preformatted.includes('"mrkdwn"'));
      const post = slack.calls.find((c) => c.method === "chat.postMessage" && c.result.ts === message.ts)!;
      assert.ok(!String(post.args.text).includes("<"), "the notification text is escaped too");
      const ok = await interact(bots[1]!.port, click("approve", message.approvalId, "UDBA1", message));
      assert.equal(ok.status, 200);
      assert.equal((await held).rowCount, 1);
    } finally {
      await agent.end();
    }
  });

  it("a signed click on either instance resumes the held statement; the message is updated; unsigned and replayed clicks are refused", async () => {
    const agent = await connectAgent();
    try {
      const sql = "DELETE FROM orders WHERE id BETWEEN 10 AND 14";
      const held = agent.query(sql);
      held.catch(() => undefined);
      const message = await messageFor(sql);

      const unsigned = await interact(bots[0]!.port, click("approve", message.approvalId, "UDBA1", message), {
        secret: "wrong",
      });
      assert.equal(unsigned.status, 401);
      const stale = await interact(bots[0]!.port, click("approve", message.approvalId, "UDBA1", message), {
        timestamp: Math.floor(Date.now() / 1000) - 600,
      });
      assert.equal(stale.status, 401);
      // An outsider and the requester itself are told no.
      await interact(bots[0]!.port, click("approve", message.approvalId, "UANALYST", message));
      await interact(bots[0]!.port, click("approve", message.approvalId, "UAGENT", message));
      await eventually("both told why", () =>
        slack.calls
          .filter((c) => c.method === "chat.postEphemeral")
          .map((c) => String(c.args.text))
          .join("\n")
          .match(/only members of dbas[\s\S]*own request|own request[\s\S]*only members of dbas/),
      );

      const signed = await interact(bots[1]!.port, click("approve", message.approvalId, "UDBA2", message));
      assert.equal(signed.status, 200);
      assert.equal((await held).rowCount, 5);
      const replayed = await signed.replay();
      assert.equal(replayed.status, 409, "a replayed click is refused");
      await eventually("the message shows the decision", () =>
        slack.calls.some(
          (c) =>
            c.method === "chat.update" &&
            c.args.ts === message.ts &&
            JSON.stringify(c.args.blocks).includes("Approved by dba2"),
        ),
      );
    } finally {
      await agent.end();
    }
  });

  it("Deny asks for a reason in a modal; the agent is told who denied and why", async () => {
    const agent = await connectAgent();
    try {
      const sql = "DELETE FROM orders WHERE id = 20";
      const held = agent.query(sql);
      held.catch(() => undefined);
      const message = await messageFor(sql);
      const press = click("deny", message.approvalId, "UDBA1", message);
      assert.equal((await interact(bots[0]!.port, press)).status, 200);
      const opened = await eventually("the reason modal opens", () =>
        slack.calls.find((c) => c.method === "views.open" && c.args.trigger_id === press.trigger_id),
      );
      const view = opened.args.view as { callback_id: string; private_metadata: string };
      const submission = {
        type: "view_submission",
        team: { id: "T1" },
        user: { id: "UDBA1" },
        api_app_id: "A1",
        token: "legacy",
        trigger_id: "t2",
        view: {
          id: "V1",
          type: "modal",
          callback_id: view.callback_id,
          private_metadata: view.private_metadata,
          state: { values: { reason: { reason: { type: "plain_text_input", value: "not <!here> today" } } } },
        },
      };
      assert.equal((await interact(bots[1]!.port, submission)).status, 200);
      await assert.rejects(held, /denied by dba1 .*: not <!here> today/);
      const direct = new pg.Client({ connectionString: gw.directUrl });
      await direct.connect();
      assert.equal((await direct.query("SELECT count(*)::int AS n FROM orders WHERE id = 20")).rows[0].n, 1);
      await direct.end();
    } finally {
      await agent.end();
    }
  });

  it("only a delegate client may decide on behalf of a Slack user", async () => {
    const agent = await connectAgent();
    const client = createClient(ApprovalService, approvalAddress);
    try {
      const sql = "DELETE FROM orders WHERE id = 30";
      const held = agent.query(sql);
      held.catch(() => undefined);
      const message = await messageFor(sql);
      const metadata = new Metadata();
      metadata.set("authorization", `Bearer ${await idp.token("impostor")}`);
      const onBehalfOf = { subject: "dba1", groups: ["dbas"], issuer: idp.issuer, clientId: "" };
      await assert.rejects(
        client.approve({ id: message.approvalId, via: "slack", onBehalfOf }, { metadata }),
        /may not decide on behalf of others/,
      );
      await assert.rejects(
        client.announce({ id: message.approvalId, channel: "C2", ts: "1.2" }, { metadata }),
        /only a delegate/,
      );
      await interact(bots[0]!.port, click("approve", message.approvalId, "UDBA1", message));
      assert.equal((await held).rowCount, 1);
    } finally {
      client.close();
      await agent.end();
    }
  });
});
