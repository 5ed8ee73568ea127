// The approval aggregate as a decider: `decide(command, state)` says which events a command causes (or why it is
// refused), `evolve(state, event)` folds an event into the state. The service loads a stream, decides, and appends
// with the stream's revision as the expectation, so two instances deciding at once cannot both win.
import type { Principal } from "@agentgate/events";

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

export interface ApprovalState {
  request: Requested;
  status: ApprovalStatus;
  decisions: Decision[];
  /** Chat messages that show the request. */
  notices: { channel: string; ts: string }[];
}

export type ApprovalCommand =
  | { type: "request"; request: Omit<Requested, "type"> }
  | { type: "approve"; approver: Principal; via: string; at: Date }
  | { type: "deny"; approver: Principal; reason: string; via: string; at: Date }
  | { type: "expire"; at: Date }
  | { type: "withdraw"; reason: string; at: Date }
  | { type: "consume"; requester: Principal; at: Date }
  | { type: "announce"; channel: string; ts: string; at: Date };

export type RefusalCode =
  | "not_found"
  | "exists"
  | "not_pending"
  | "self_approval"
  | "not_an_approver"
  | "already_decided"
  | "not_the_requester"
  | "invalid";

/** A command the aggregate refuses; `code` says why (the gRPC layer maps it to a status). */
export class ApprovalRefused extends Error {
  override readonly name = "ApprovalRefused";
  constructor(
    readonly code: RefusalCode,
    message: string,
  ) {
    super(message);
  }
}

export function evolve(state: ApprovalState | undefined, event: ApprovalEvent): ApprovalState | undefined {
  if (event.type === "requested") return { request: event, status: "pending", decisions: [], notices: [] };
  if (state === undefined) return undefined; // an event without its request: ignored (never written by decide)
  switch (event.type) {
    case "granted": {
      const decisions = [
        ...state.decisions,
        { approver: event.approver, approved: true, reason: "", via: event.via, at: event.at },
      ];
      const approvals = new Set(decisions.filter((d) => d.approved).map((d) => principalKey(d.approver))).size;
      return {
        ...state,
        decisions,
        status: approvals >= state.request.approvalsRequired ? "approved" : state.status,
      };
    }
    case "denied":
      return {
        ...state,
        status: "denied",
        decisions: [
          ...state.decisions,
          { approver: event.approver, approved: false, reason: event.reason, via: event.via, at: event.at },
        ],
      };
    case "expired":
      return { ...state, status: "expired" };
    case "withdrawn":
      return { ...state, status: "withdrawn" };
    case "consumed":
      return { ...state, status: "consumed" };
    case "announced":
      return { ...state, notices: [...state.notices, { channel: event.channel, ts: event.ts }] };
  }
}

export function decide(command: ApprovalCommand, state: ApprovalState | undefined): ApprovalEvent[] {
  if (command.type === "request") {
    if (state !== undefined) throw new ApprovalRefused("exists", "this approval was already requested");
    const r = command.request;
    if (r.approverGroups.length === 0) throw new ApprovalRefused("invalid", "an approval needs approver groups");
    if (r.approvalsRequired < 1) throw new ApprovalRefused("invalid", "an approval needs at least one approver");
    return [{ type: "requested", ...r }];
  }
  if (state === undefined) throw new ApprovalRefused("not_found", "no such approval");
  switch (command.type) {
    case "approve":
    case "deny": {
      if (state.status !== "pending") throw new ApprovalRefused("not_pending", `the request is ${state.status}`);
      const approver = command.approver;
      if (principalKey(approver) === principalKey(state.request.requester)) {
        throw new ApprovalRefused("self_approval", "a principal cannot decide its own request");
      }
      const groups = new Set(approver.groups);
      if (!state.request.approverGroups.some((g) => groups.has(g))) {
        throw new ApprovalRefused(
          "not_an_approver",
          `only members of ${state.request.approverGroups.join(", ")} may decide this request`,
        );
      }
      if (state.decisions.some((d) => principalKey(d.approver) === principalKey(approver))) {
        throw new ApprovalRefused("already_decided", "this approver already decided this request");
      }
      if (command.type === "approve") {
        return [{ type: "granted", approver, via: command.via, at: command.at }];
      }
      const reason = command.reason.trim();
      if (reason === "") throw new ApprovalRefused("invalid", "a denial needs a reason");
      return [{ type: "denied", approver, reason, via: command.via, at: command.at }];
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
      if (command.channel === "" || command.ts === "")
        throw new ApprovalRefused("invalid", "channel and ts are required");
      return [{ type: "announced", channel: command.channel, ts: command.ts, at: command.at }];
  }
}

/** The same principal: same issuer and subject. */
export function principalKey(p: Principal): string {
  return `${p.issuer}\u0000${p.subject}`;
}
