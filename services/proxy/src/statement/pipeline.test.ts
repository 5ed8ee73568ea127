// The statement pipeline without a server: client messages in, what goes upstream out, in order; server messages in,
// what reaches the client out. The policy and approval services are in-memory ports with fixed answers (their gRPC
// adapters and the real services are tested end to end in ../enforce.test.ts and services/cli/src/approvals.test.ts).
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import type { Approval } from "@agentgate/events";
import { initSqlAnalysis } from "@agentgate/sql";
import { Backend, MessageFramer, readyForQuery, WriteBatch } from "@agentgate/wire";
import { serialize } from "pg-protocol";
import { pino } from "pino";
import type { ApprovalOutcome, ApprovalPort, ApprovalRequest } from "../enforce/approvals.ts";
import { Backstop } from "../enforce/backstop.ts";
import { StatementGate } from "../enforce/gate.ts";
import type { Decision, Effect, PolicyPort } from "../enforce/policy.ts";
import { type PipelineHost, StatementPipeline } from "./pipeline.ts";

before(() => initSqlAnalysis());

const logger = pino({ level: "silent" });

/** A policy port that decides by the statement's class: reads allowed, writes as `writes` says; every answer cached. */
function policyPort(writes: Effect): PolicyPort & { asked: number } {
  const port = {
    asked: 0,
    cached: (query: { statements: { classes: string[] }[] }): Decision | undefined => {
      const write = query.statements.some((s) => s.classes.includes("write"));
      return {
        effect: write ? writes : "allow",
        rule: write ? "writes" : "reads",
        reason: "",
        revision: "r1",
        masks: [],
        approverGroups: ["dbas"],
        approvalsRequired: 1,
        maskedPredicates: "whole-value",
      } as Decision;
    },
    decide: () => Promise.reject(new Error("not used: every decision is cached")),
    readOnly: () => Promise.resolve(false),
    close: () => undefined,
  };
  return port as unknown as PolicyPort & { asked: number };
}

/** An approval service whose requests are decided when the test says. */
function approvalPort() {
  const requests: ApprovalRequest[] = [];
  let decide: (outcome: ApprovalOutcome) => void = () => undefined;
  const port: ApprovalPort = {
    request: (request) => {
      requests.push(request);
      return Promise.resolve({ id: `a${requests.length}` } as Approval);
    },
    wait: () =>
      new Promise<ApprovalOutcome>((resolve) => {
        decide = resolve;
      }),
    consume: () => Promise.resolve(undefined),
    close: () => undefined,
  };
  return {
    port,
    requests,
    approve: () => decide({ state: "approved", approval: { id: "a1", decisions: [] } as unknown as Approval }),
  };
}

function setup(options: { writes: Effect; approvals?: ReturnType<typeof approvalPort> }) {
  const toUpstream = new WriteBatch();
  const toClient = new WriteBatch();
  const events: string[] = [];
  const host: PipelineHost = {
    log: () => logger,
    relaying: () => true,
    pauseClient: () => events.push("pause"),
    resumeClient: () => events.push("resume"),
    flushToUpstream: () => undefined,
    fail: (error) => events.push(`fail: ${String(error)}`),
    idle: () => events.push("idle"),
  };
  const gate = new StatementGate({
    policy: policyPort(options.writes),
    approvals: options.approvals && {
      port: options.approvals.port,
      timeoutMs: 60_000,
      mode: "wait",
      estimate: () => Promise.resolve(7n),
    },
    principal: undefined,
    target: "app",
    sessionId: "s1",
    readOnly: false,
    logger,
  });
  const pipeline = new StatementPipeline({
    host,
    toUpstream,
    toClient,
    gate,
    backstop: new Backstop({ readOnlySession: false }),
    masking: undefined,
    maskCatalog: undefined,
    audit: undefined,
    sessionSignal: new AbortController().signal,
    showUser: (m) => m,
  });
  /** What went upstream so far, as the SQL of each Query (a refusal shows as REFUSED with its SQLSTATE). */
  const upstream = (): string[] => {
    const out: string[] = [];
    const framer = new MessageFramer(1 << 20);
    for (const part of toUpstream.take()) {
      framer.push(part, (type, message) => {
        const sql = message.toString("utf8", 5, message.length - 1);
        const refused = /ERRCODE = '(\w+)'/.exec(sql);
        out.push(type === 0x51 ? (refused ? `REFUSED ${refused[1]}` : sql) : String.fromCharCode(type));
      });
    }
    return out;
  };
  const client = (sql: string) => pipeline.fromClient(0x51, serialize.query(sql));
  return { pipeline, upstream, client, events, toClient };
}

const tick = () => new Promise((r) => setImmediate(r));

describe("the statement pipeline", () => {
  it("forwards a cached allow at once, and a refusal in its place", () => {
    const { upstream, client, events } = setup({ writes: "deny" });
    client("SELECT 1");
    assert.deepEqual(upstream(), ["SELECT 1"]);
    client("DELETE FROM t");
    assert.deepEqual(upstream(), ["REFUSED 42501"]);
    assert.deepEqual(events, [], "nothing waited");
  });

  it("holds a statement for its approvers, and what follows it behind it, in order", async () => {
    const approvals = approvalPort();
    const { upstream, client, events } = setup({ writes: "require_approval", approvals });
    client("DELETE FROM t");
    client("SELECT 2");
    await tick();
    assert.deepEqual(upstream(), [], "nothing runs before approval");
    assert.equal(approvals.requests.length, 1);
    assert.equal(approvals.requests[0]?.sql, "DELETE FROM t");
    assert.equal(approvals.requests[0]?.estimatedRows, 7n);
    approvals.approve();
    await tick();
    await tick();
    // The write runs read-write (the backstop's switch first), the read behind it read-only again.
    assert.deepEqual(upstream(), [
      "SET default_transaction_read_only = off",
      "DELETE FROM t",
      "SET default_transaction_read_only = on",
      "SELECT 2",
    ]);
    assert.deepEqual(events, ["pause", "resume"]);
  });

  it("refuses a statement that needs approval where there is no approval service, saying so", () => {
    const { upstream, client } = setup({ writes: "require_approval" });
    client("DELETE FROM t");
    assert.deepEqual(upstream(), ["REFUSED 42501"]);
  });

  it("drops the answers to the gateway's own messages and passes the client's", () => {
    const { pipeline, client, upstream, toClient, events } = setup({ writes: "allow" });
    client("INSERT INTO t VALUES (1)"); // [switch] [INSERT]
    assert.equal(upstream().length, 2);
    const complete = (tag: string) => {
      const body = Buffer.from(`${tag}\0`);
      return Buffer.concat([Buffer.from([Backend.CommandComplete, 0, 0, 0, 4 + body.length]), body]);
    };
    for (const m of [complete("SET"), readyForQuery("I"), complete("INSERT 0 1"), readyForQuery("I")]) {
      pipeline.fromUpstream(m[0]!, m);
    }
    const seen: string[] = [];
    const framer = new MessageFramer(1 << 20);
    for (const part of toClient.take()) framer.push(part, (type) => seen.push(String.fromCharCode(type)));
    assert.deepEqual(seen, ["C", "Z"]);
    assert.deepEqual(events, ["idle"]);
    assert.equal(pipeline.idle, true);
  });
});
