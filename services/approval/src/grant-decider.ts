// The grant aggregate (stream `grant-<id>`, the id of the approved grant request): time-boxed access for a principal
// to some statement classes on a target. Issued once from an approved grant request, revoked at most once, by a
// grant approver. Expiry is not an event: a grant is in force until its `expiresAt`, which every reader compares
// with its own clock (the events are GrantIssued and GrantRevoked in proto/agentgate/v1/approval.proto).
import type { Principal } from "@agentgate/events";
import type { ApprovalState } from "./approval-decider.ts";
import { ApprovalRefused, type Decider, memberOf } from "./decider.ts";

/** What a grant gives: `classes` on `target` to `principal` until `expiresAt`. */
export interface GrantTerms {
  grantId: string;
  principal: Principal;
  target: string;
  classes: string[];
  expiresAt: Date;
}

export type GrantEvent =
  | ({ type: "issued"; at: Date } & GrantTerms)
  | { type: "revoked"; by: Principal; reason: string; at: Date };

export type IssuedGrant = GrantTerms & { status: "issued" | "revoked" };

export type GrantState = { status: "none" } | IssuedGrant;

export type GrantCommand =
  /** Issues the grant `approval` asks for, for its `grantSeconds` from `at`. */
  | { type: "issue"; approval: ApprovalState; at: Date }
  /** Ends the grant early; `grantApprovers` are the groups allowed to (the service's configuration). */
  | { type: "revoke"; by: Principal; grantApprovers: readonly string[]; reason: string; at: Date };

function evolve(state: GrantState, event: GrantEvent): GrantState {
  switch (event.type) {
    case "issued": {
      const { grantId, principal, target, classes, expiresAt } = event;
      return { status: "issued", grantId, principal, target, classes, expiresAt };
    }
    case "revoked":
      return state.status === "none" ? state : { ...state, status: "revoked" };
  }
}

function decide(command: GrantCommand, state: GrantState): GrantEvent[] {
  switch (command.type) {
    case "issue": {
      if (state.status !== "none") return []; // issued already (by this or another instance): once only
      const approval = command.approval;
      if (approval.status !== "approved" || approval.request.mode !== "grant") {
        throw new ApprovalRefused("not_pending", "only an approved grant request issues a grant");
      }
      const r = approval.request;
      const expiresAt = new Date(command.at.getTime() + r.grantSeconds * 1000);
      const terms = { grantId: r.approvalId, principal: r.requester, target: r.target, classes: r.grantClasses };
      return [{ type: "issued", ...terms, expiresAt, at: command.at }];
    }
    case "revoke": {
      // Asked first, so that whoever may not revoke learns nothing about which grants exist.
      if (!memberOf(command.by, command.grantApprovers)) {
        throw new ApprovalRefused("not_an_approver", "only grant approvers may revoke grants");
      }
      if (state.status === "none") throw new ApprovalRefused("not_found", "no such grant");
      if (state.status === "revoked") throw new ApprovalRefused("not_in_force", "the grant was already revoked");
      if (!inForce(state, command.at)) throw new ApprovalRefused("not_in_force", "the grant has expired");
      const reason = command.reason.trim();
      if (reason === "") throw new ApprovalRefused("invalid", "a revocation needs a reason");
      return [{ type: "revoked", by: command.by, reason, at: command.at }];
    }
  }
}

/** Whether the grant lets its principal act at `at`: issued, not revoked, not expired. */
export function inForce(state: GrantState, at: Date): state is IssuedGrant {
  return state.status === "issued" && state.expiresAt.getTime() > at.getTime();
}

export const grantDecider: Decider<GrantState, GrantCommand, GrantEvent> = {
  initialState: () => ({ status: "none" }),
  evolve,
  decide,
};
