import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Principal } from "@agentgate/events";
import { type ApprovalCommand, ApprovalRefused, type ApprovalState, decide, evolve } from "./decider.ts";

const who = (subject: string, groups: string[] = [], issuer = "https://idp"): Principal => ({
  $typeName: "agentgate.v1.Principal",
  subject,
  groups,
  issuer,
  clientId: "",
});
const at = new Date("2026-11-21T12:00:00Z");
const requester = who("agent", ["agents", "dbas"]);

function run(commands: ApprovalCommand[], start?: ApprovalState): ApprovalState | undefined {
  let state = start;
  for (const command of commands) for (const event of decide(command, state)) state = evolve(state, event);
  return state;
}

const request = (approvalsRequired = 1, mode: "wait" | "deferred" = "wait"): ApprovalCommand => ({
  type: "request",
  request: {
    approvalId: "a1",
    requester,
    target: "app",
    sessionId: "s1",
    sql: "DELETE FROM orders",
    parameters: [],
    rule: "r",
    reason: "why",
    approverGroups: ["dbas"],
    approvalsRequired,
    estimatedRows: 10n,
    objects: ["orders"],
    fingerprint: "f",
    mode,
    grantClasses: [],
    grantSeconds: 0,
    at,
    expiresAt: new Date(at.getTime() + 60_000),
  },
});
const approve = (p: Principal): ApprovalCommand => ({ type: "approve", approver: p, via: "cli", at });
const refusal = (code: string) => (e: unknown) => e instanceof ApprovalRefused && e.code === code;

describe("the approval decider", () => {
  it("a request is pending until enough distinct approvers approve", () => {
    assert.equal(run([request()])?.status, "pending");
    assert.equal(run([request(), approve(who("dba1", ["dbas"]))])?.status, "approved");
    const one = run([request(2), approve(who("dba1", ["dbas"]))]);
    assert.equal(one?.status, "pending");
    assert.throws(() => run([approve(who("dba1", ["dbas"]))], one), refusal("already_decided"));
    assert.equal(run([approve(who("dba2", ["dbas"]))], one)?.status, "approved");
  });

  it("refuses self-approval (same issuer and subject), outsiders, and decisions on a decided request", () => {
    const pending = run([request()]);
    assert.throws(() => run([approve(who("agent", ["dbas"]))], pending), refusal("self_approval"));
    // The same subject from another issuer is another principal.
    assert.equal(run([approve(who("agent", ["dbas"], "https://other"))], pending)?.status, "approved");
    assert.throws(() => run([approve(who("analyst", ["analysts"]))], pending), refusal("not_an_approver"));
    const denied = run([{ type: "deny", approver: who("dba1", ["dbas"]), reason: "no", via: "cli", at }], pending);
    assert.equal(denied?.status, "denied");
    assert.deepEqual(
      denied?.decisions.map((d) => [d.approver.subject, d.approved, d.reason]),
      [["dba1", false, "no"]],
    );
    assert.throws(() => run([approve(who("dba2", ["dbas"]))], denied), refusal("not_pending"));
    assert.throws(
      () => run([{ type: "deny", approver: who("dba2", ["dbas"]), reason: " ", via: "cli", at }], pending),
      refusal("invalid"),
    );
  });

  it("expiry and withdrawal end only a pending request; a second request with the same id is refused", () => {
    const pending = run([request()]);
    assert.equal(run([{ type: "expire", at }], pending)?.status, "expired");
    assert.equal(run([{ type: "withdraw", reason: "cancel", at }], pending)?.status, "withdrawn");
    const approved = run([approve(who("dba1", ["dbas"]))], pending);
    assert.deepEqual(decide({ type: "expire", at }, approved), [], "decided in time: nothing to expire");
    assert.throws(() => decide(request(), pending), refusal("exists"));
    assert.throws(() => decide(approve(who("dba1", ["dbas"])), undefined), refusal("not_found"));
  });

  it("a deferred approval is consumed once, by its requester only", () => {
    const approved = run([request(1, "deferred"), approve(who("dba1", ["dbas"]))]);
    assert.throws(
      () => run([{ type: "consume", requester: who("other"), at }], approved),
      refusal("not_the_requester"),
    );
    const used = run([{ type: "consume", requester, at }], approved);
    assert.equal(used?.status, "consumed");
    assert.throws(() => run([{ type: "consume", requester, at }], used), refusal("not_pending"));
    const waitMode = run([request(), approve(who("dba1", ["dbas"]))]);
    assert.throws(() => run([{ type: "consume", requester, at }], waitMode), refusal("not_pending"));
  });
});
