// Every rule of the approval decider, as given (events in the stream) / when (a command) / then (events or refusal).
import { describe, it } from "node:test";
import type { Principal } from "@agentgate/events";
import { type ApprovalCommand, type ApprovalEvent, approvalDecider, type Requested } from "./approval-decider.ts";
import { deciderSpecification } from "./testing/decider-spec.ts";
import { analyst, at, dba1, dba2, dba3, requested, requester, who } from "./testing/fixtures.ts";

const spec = deciderSpecification(approvalDecider);

/** Who decides, where and when: what an approval or a denial, and the command for it, say. */
const by = (approver: Principal) => ({ approver, via: "cli", at });
const approve = (approver: Principal): ApprovalCommand => ({ type: "approve", ...by(approver) });
const deny = (approver: Principal, reason = "no"): ApprovalCommand => ({ type: "deny", reason, ...by(approver) });
const granted = (approver: Principal): ApprovalEvent => ({ type: "granted", ...by(approver) });
const denied = (approver: Principal, reason = "no"): ApprovalEvent => ({ type: "denied", reason, ...by(approver) });
const request: Omit<Requested, "type"> = requested();
const expire: ApprovalCommand = { type: "expire", at };
const withdraw: ApprovalCommand = { type: "withdraw", reason: "client cancelled", at };
const consume = (by: Principal): ApprovalCommand => ({ type: "consume", requester: by, at });
const announce = (channel: string, ts = "1.1"): ApprovalCommand => ({ type: "announce", channel, ts, at });

const two = requested({ approvalsRequired: 2 });

/** The streams of a request that is over, one per way it can end. */
const decided: Record<string, ApprovalEvent[]> = {
  approved: [requested(), granted(dba1)],
  denied: [requested(), denied(dba1)],
  expired: [requested(), { type: "expired", at }],
  withdrawn: [requested(), { type: "withdrawn", reason: "client cancelled", at }],
  consumed: [requested({ mode: "deferred" }), granted(dba1), { type: "consumed", at }],
};

describe("the approval decider: requests", () => {
  it("a request on a new stream is requested, once", () => {
    spec.given([]).when({ type: "request", request }).then([requested()]);
    spec.given([requested()]).when({ type: "request", request }).thenThrows("exists");
  });

  it("a request needs approver groups and at least one approval", () => {
    spec
      .given([])
      .when({ type: "request", request: { ...request, approverGroups: [] } })
      .thenThrows("invalid", /approver groups/);
    spec
      .given([])
      .when({ type: "request", request: { ...request, approvalsRequired: 0 } })
      .thenThrows("invalid", /at least one/);
  });

  it("every other command needs the request first", () => {
    for (const command of [approve(dba1), deny(dba1), expire, withdraw, consume(requester), announce("C1")]) {
      spec.given([]).when(command).thenThrows("not_found");
    }
  });
});

describe("the approval decider: approvers", () => {
  it("an approver of the rule's groups approves a pending request", () => {
    spec
      .given([requested()])
      .when(approve(dba1))
      .then([granted(dba1)]);
    spec
      .given([requested({ approverGroups: ["admins", "analysts"] })])
      .when(approve(dba3))
      .then([granted(dba3)]);
  });

  it("a request needing two approvals takes one decision per approver, until two distinct approvers approve", () => {
    spec
      .given([two, granted(dba1)])
      .when(approve(dba2))
      .then([granted(dba2)]);
    spec
      .given([two, granted(dba1)])
      .when(deny(dba2))
      .then([denied(dba2)]);
    for (const again of [approve(dba1), deny(dba1)]) {
      spec
        .given([two, granted(dba1)])
        .when(again)
        .thenThrows("already_decided");
    }
    spec
      .given([two, granted(dba1), granted(dba2)])
      .when(approve(dba3))
      .thenThrows("not_pending", /approved/);
    // One approver counted twice is still one: the request is pending (so it can expire).
    spec
      .given([two, granted(dba1), granted(dba1)])
      .when(expire)
      .then([{ type: "expired", at }]);
    // The same subject from another issuer is another principal.
    const namesake = who("dba1", ["dbas"], "https://other");
    spec
      .given([two, granted(dba1)])
      .when(approve(namesake))
      .then([granted(namesake)]);
  });

  it("a request with one approval needed is approved by the first approver", () => {
    spec
      .given([requested(), granted(dba1)])
      .when(approve(dba2))
      .thenThrows("not_pending", /approved/);
  });

  it("no principal decides its own request: same issuer and subject, whatever its groups", () => {
    spec.given([requested()]).when(approve(requester)).thenThrows("self_approval");
    spec.given([requested()]).when(deny(requester)).thenThrows("self_approval");
    spec
      .given([requested()])
      .when(approve(who("agent", ["dbas"])))
      .thenThrows("self_approval");
    spec
      .given([requested()])
      .when(approve(who("agent", ["dbas"], "https://other")))
      .then([granted(who("agent", ["dbas"], "https://other"))]);
  });

  it("outsiders of the rule's approver groups decide nothing", () => {
    spec
      .given([requested()])
      .when(approve(analyst))
      .thenThrows("not_an_approver", /only members of dbas/);
    spec.given([requested()]).when(deny(analyst)).thenThrows("not_an_approver");
    spec
      .given([requested()])
      .when(approve(who("nobody")))
      .thenThrows("not_an_approver");
  });

  it("a decided request takes no more decisions", () => {
    for (const [status, events] of Object.entries(decided)) {
      spec.given(events).when(approve(dba2)).thenThrows("not_pending", new RegExp(status));
      spec.given(events).when(deny(dba2)).thenThrows("not_pending", new RegExp(status));
    }
  });

  it("a denial needs a reason (trimmed) and ends the request, even one that needed two approvals", () => {
    spec
      .given([requested()])
      .when(deny(dba1, "  not during the audit "))
      .then([denied(dba1, "not during the audit")]);
    spec
      .given([requested()])
      .when(deny(dba1, " "))
      .thenThrows("invalid", /reason/);
    spec
      .given([two, granted(dba1), denied(dba2)])
      .when(approve(dba3))
      .thenThrows("not_pending", /denied/);
  });
});

describe("the approval decider: ends", () => {
  it("a pending request expires or is withdrawn", () => {
    spec
      .given([requested()])
      .when(expire)
      .then([{ type: "expired", at }]);
    spec
      .given([requested()])
      .when(withdraw)
      .then([{ type: "withdrawn", reason: "client cancelled", at }]);
    spec
      .given([requested({ approvalsRequired: 2 }), granted(dba1)])
      .when(expire)
      .then([{ type: "expired", at }]);
  });

  it("expiry and withdrawal after the request is over emit nothing", () => {
    for (const events of Object.values(decided)) {
      spec.given(events).when(expire).then([]);
      spec.given(events).when(withdraw).then([]);
    }
  });
});

describe("the approval decider: deferred requests", () => {
  const deferred = requested({ mode: "deferred" });

  it("an approved deferred request is consumed by its requester, once", () => {
    spec
      .given([deferred, granted(dba1)])
      .when(consume(requester))
      .then([{ type: "consumed", at }]);
    spec
      .given([deferred, granted(dba1), { type: "consumed", at }])
      .when(consume(requester))
      .thenThrows("not_pending", /consumed/);
  });

  it("no one else consumes it: another subject, or the same subject from another issuer", () => {
    spec
      .given([deferred, granted(dba1)])
      .when(consume(dba1))
      .thenThrows("not_the_requester");
    spec
      .given([deferred, granted(dba1)])
      .when(consume(who("agent", ["agents"], "https://other")))
      .thenThrows("not_the_requester");
  });

  it("only an approved deferred request is consumed: not a pending or denied one, not a wait or grant request", () => {
    spec
      .given([deferred])
      .when(consume(requester))
      .thenThrows("not_pending", /pending/);
    spec
      .given([deferred, denied(dba1)])
      .when(consume(requester))
      .thenThrows("not_pending", /denied/);
    spec
      .given([requested(), granted(dba1)])
      .when(consume(requester))
      .thenThrows("not_pending");
    spec
      .given([requested({ mode: "grant" }), granted(dba1)])
      .when(consume(requester))
      .thenThrows("not_pending");
  });
});

describe("the approval decider: announcements", () => {
  it("a request is announced once per channel, whatever its state", () => {
    spec
      .given([requested()])
      .when(announce("C1"))
      .then([{ type: "announced", channel: "C1", ts: "1.1", at }]);
    const shown: ApprovalEvent = { type: "announced", channel: "C1", ts: "1.1", at };
    spec.given([requested(), shown]).when(announce("C1", "2.2")).thenThrows("exists");
    spec
      .given([requested(), shown])
      .when(announce("C2", "2.2"))
      .then([{ type: "announced", channel: "C2", ts: "2.2", at }]);
    spec
      .given([requested(), denied(dba1)])
      .when(announce("C1"))
      .then([{ type: "announced", channel: "C1", ts: "1.1", at }]);
  });

  it("an announcement names its channel and message", () => {
    spec.given([requested()]).when(announce("")).thenThrows("invalid");
    spec.given([requested()]).when(announce("C1", "")).thenThrows("invalid");
  });
});
