// The approval aggregate (stream `approval-<id>`): a statement (or a grant) held until enough distinct approvers of
// the rule's groups approve it, one of them denies it, or it ends unapproved (expired, withdrawn).
import type { Principal } from "@agentgate/events";
import { ApprovalRefused, type Decider, memberOf, principalKey } from "./decider.ts";

export type ApprovalStatus = "pending" | "approved" | "denied" | "expired" | "withdrawn" | "consumed";

export interface Requested {
  type: "requested";
  approvalId: string;
  requester: Principal;
  target: string;
  sessionId: string;
  sql: string;
  parameters: string[];
  rule: string;
  reason: string;
  approverGroups: string[];
  approvalsRequired: number;
  estimatedRows: bigint;
  objects: string[];
  fingerprint: string;
  /** wait, deferred: a statement; grant: time-boxed access (grantClasses on target for grantSeconds). */
  mode: "wait" | "deferred" | "grant";
  grantClasses: string[];
  grantSeconds: number;
  at: Date;
  expiresAt: Date;
}

export type ApprovalEvent =
  | Requested
  | { type: "granted"; approver: Principal; via: string; at: Date }
  | { type: "denied"; approver: Principal; reason: string; via: string; at: Date }
  | { type: "expired"; at: Date }
  | { type: "withdrawn"; reason: string; at: Date }
  | { type: "consumed"; at: Date }
  | { type: "announced"; channel: string; ts: string; at: Date };

export interface Decision {
  approver: Principal;
  approved: boolean;
  reason: string;
  via: string;
  at: Date;
}

/** An approval once requested. */
export interface RequestedApproval {
  status: ApprovalStatus;
  request: Requested;
  decisions: Decision[];
  /** Chat messages that show the request. */
  notices: { channel: string; ts: string }[];
}

export type ApprovalState = { status: "none" } | RequestedApproval;

export type ApprovalCommand =
  | { type: "request"; request: Omit<Requested, "type"> }
  | { type: "approve"; approver: Principal; via: string; at: Date }
  | { type: "deny"; approver: Principal; reason: string; via: string; at: Date }
  | { type: "expire"; at: Date }
  | { type: "withdraw"; reason: string; at: Date }
  | { type: "consume"; requester: Principal; at: Date }
  | { type: "announce"; channel: string; ts: string; at: Date };

function evolve(state: ApprovalState, event: ApprovalEvent): ApprovalState {
  if (event.type === "requested") return { status: "pending", request: event, decisions: [], notices: [] };
  if (state.status === "none") return state; // an event without its request: ignored (never written by decide)
  switch (event.type) {
    case "granted": {
      const { approver, via, at } = event;
      const decisions = [...state.decisions, { approver, approved: true, reason: "", via, at }];
      const approvals = new Set(decisions.filter((d) => d.approved).map((d) => principalKey(d.approver))).size;
      return { ...state, decisions, status: approvals >= state.request.approvalsRequired ? "approved" : state.status };
    }
    case "denied": {
      const { approver, reason, via, at } = event;
      return {
        ...state,
        status: "denied",
        decisions: [...state.decisions, { approver, approved: false, reason, via, at }],
      };
    }
    case "expired":
    case "withdrawn":
    case "consumed":
      return { ...state, status: event.type };
    case "announced":
      return { ...state, notices: [...state.notices, { channel: event.channel, ts: event.ts }] };
  }
}

function decide(command: ApprovalCommand, state: ApprovalState): ApprovalEvent[] {
  if (command.type === "request") return request(command.request, state);
  if (state.status === "none") throw new ApprovalRefused("not_found", "no such approval");
  switch (command.type) {
    case "approve":
      mayDecide(command.approver, state);
      return [{ type: "granted", approver: command.approver, via: command.via, at: command.at }];
    case "deny": {
      mayDecide(command.approver, state);
      const reason = command.reason.trim();
      if (reason === "") throw new ApprovalRefused("invalid", "a denial needs a reason");
      return [{ type: "denied", approver: command.approver, reason, via: command.via, at: command.at }];
    }
    case "expire":
      if (state.status !== "pending") return []; // decided meanwhile: nothing to expire
      return [{ type: "expired", at: command.at }];
    case "withdraw":
      if (state.status !== "pending") return [];
      return [{ type: "withdrawn", reason: command.reason, at: command.at }];
    case "consume":
      if (state.request.mode !== "deferred" || state.status !== "approved") {
        throw new ApprovalRefused("not_pending", `the request is ${state.status}, not an approved deferred request`);
      }
      if (principalKey(command.requester) !== principalKey(state.request.requester)) {
        throw new ApprovalRefused("not_the_requester", "only the requester may run an approved statement");
      }
      return [{ type: "consumed", at: command.at }];
    case "announce":
      if (state.notices.some((n) => n.channel === command.channel)) {
        throw new ApprovalRefused("exists", "a message on this channel already shows this request");
      }
      if (command.channel === "" || command.ts === "") {
        throw new ApprovalRefused("invalid", "channel and ts are required");
      }
      return [{ type: "announced", channel: command.channel, ts: command.ts, at: command.at }];
  }
}

function request(r: Omit<Requested, "type">, state: ApprovalState): ApprovalEvent[] {
  if (state.status !== "none") throw new ApprovalRefused("exists", "this approval was already requested");
  if (r.approverGroups.length === 0) throw new ApprovalRefused("invalid", "an approval needs approver groups");
  if (r.approvalsRequired < 1) throw new ApprovalRefused("invalid", "an approval needs at least one approver");
  return [{ type: "requested", ...r }];
}

/** Refuses an approver who may not decide this request (now). */
function mayDecide(approver: Principal, state: RequestedApproval): void {
  if (state.status !== "pending") throw new ApprovalRefused("not_pending", `the request is ${state.status}`);
  if (principalKey(approver) === principalKey(state.request.requester)) {
    throw new ApprovalRefused("self_approval", "a principal cannot decide its own request");
  }
  if (!memberOf(approver, state.request.approverGroups)) {
    throw new ApprovalRefused(
      "not_an_approver",
      `only members of ${state.request.approverGroups.join(", ")} may decide this request`,
    );
  }
  if (state.decisions.some((d) => principalKey(d.approver) === principalKey(approver))) {
    throw new ApprovalRefused("already_decided", "this approver already decided this request");
  }
}

export const approvalDecider: Decider<ApprovalState, ApprovalCommand, ApprovalEvent> = {
  initialState: () => ({ status: "none" }),
  evolve,
  decide,
};
