// Every rule of the grant decider, as given (events in `grant-<id>`) / when (a command) / then (events or refusal).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Principal } from "@agentgate/events";
import { type ApprovalEvent, type ApprovalState, approvalDecider } from "./approval-decider.ts";
import { fold } from "./decider.ts";
import { type GrantCommand, type GrantEvent, grantDecider, inForce } from "./grant-decider.ts";
import { deciderSpecification } from "./testing/decider-spec.ts";
import { analyst, at, dba1, grantRequested, later, requested, requester } from "./testing/fixtures.ts";

const spec = deciderSpecification(grantDecider);

/** The approval a grant is issued from, as its stream's events make it. */
const approval = (...events: ApprovalEvent[]): ApprovalState => fold(approvalDecider, events);
const approvedGrant = approval(grantRequested(), { type: "granted", approver: dba1, via: "cli", at });

const issue = (from: ApprovalState, when = at): GrantCommand => ({ type: "issue", approval: from, at: when });
const issued: GrantEvent = {
  type: "issued",
  grantId: "g1",
  principal: requester,
  target: "app",
  classes: ["ddl"],
  expiresAt: later(600),
  at,
};
const revoke = (by: Principal, when = later(60), reason = "done"): GrantCommand => ({
  type: "revoke",
  by,
  grantApprovers: ["dbas"],
  reason,
  at: when,
});
const revoked = (by: Principal, when = later(60)): GrantEvent => ({ type: "revoked", by, reason: "done", at: when });

describe("the grant decider: issue", () => {
  it("an approved grant request issues its grant to the requester, for its seconds from now", () => {
    spec.given([]).when(issue(approvedGrant)).then([issued]);
    spec
      .given([])
      .when(issue(approvedGrant, later(5)))
      .then([{ ...issued, expiresAt: later(605), at: later(5) }]);
  });

  it("a grant is issued once: issuing again, or after a revocation, emits nothing", () => {
    spec.given([issued]).when(issue(approvedGrant)).then([]);
    spec
      .given([issued, revoked(dba1)])
      .when(issue(approvedGrant))
      .then([]);
  });

  it("nothing but an approved grant request issues a grant", () => {
    const pending = approval(grantRequested());
    const denied = approval(grantRequested(), { type: "denied", approver: dba1, reason: "no", via: "cli", at });
    const expired = approval(grantRequested(), { type: "expired", at });
    const statement = approval(requested(), { type: "granted", approver: dba1, via: "cli", at });
    for (const from of [approval(), pending, denied, expired, statement]) {
      spec
        .given([])
        .when(issue(from))
        .thenThrows("not_pending", /approved grant request/);
    }
  });
});

describe("the grant decider: revoke", () => {
  it("a grant approver revokes a grant in force, with a reason (trimmed)", () => {
    spec
      .given([issued])
      .when(revoke(dba1))
      .then([revoked(dba1)]);
    spec
      .given([issued])
      .when(revoke(dba1, later(60), "  done "))
      .then([revoked(dba1)]);
    spec
      .given([issued])
      .when(revoke(dba1, later(60), " "))
      .thenThrows("invalid", /reason/);
  });

  it("only members of the grant approver groups revoke, and they learn first that they may not", () => {
    spec
      .given([issued])
      .when(revoke(analyst))
      .thenThrows("not_an_approver", /only grant approvers/);
    spec.given([]).when(revoke(analyst)).thenThrows("not_an_approver");
    spec
      .given([issued])
      .when({ type: "revoke", by: dba1, grantApprovers: [], reason: "done", at: later(60) })
      .thenThrows("not_an_approver");
  });

  it("a grantee who is a grant approver may give the grant up", () => {
    spec
      .given([issued])
      .when(revoke(requester))
      .then([revoked(requester)]);
  });

  it("a grant is revoked once, and only while it exists and is in force", () => {
    spec.given([]).when(revoke(dba1)).thenThrows("not_found");
    spec
      .given([issued, revoked(dba1)])
      .when(revoke(dba1))
      .thenThrows("not_in_force", /already revoked/);
    spec
      .given([issued])
      .when(revoke(dba1, later(600)))
      .thenThrows("not_in_force", /expired/);
    spec
      .given([issued])
      .when(revoke(dba1, later(599)))
      .then([revoked(dba1, later(599))]);
  });
});

describe("a grant in force", () => {
  it("is issued, not revoked, and not past its expiry (which is no event but the reader's clock)", () => {
    assert.equal(inForce(fold(grantDecider, []), at), false);
    assert.equal(inForce(fold(grantDecider, [issued]), later(599)), true);
    assert.equal(inForce(fold(grantDecider, [issued]), later(600)), false);
    assert.equal(inForce(fold(grantDecider, [issued, revoked(dba1)]), later(60)), false);
  });
});
