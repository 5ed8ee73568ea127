import { Effect, type PolicyService, type Principal } from "@agentgate/events";
import { Code, GrpcError, type ServiceImpl } from "@agentgate/grpc";
import {
  type ActiveGrant,
  decide,
  masksApplying,
  type Policy,
  type PrincipalFacts,
  READ_ONLY_CLASSES,
  type RuleEffect,
  readOnly,
} from "@agentgate/policy";
import type { Logger } from "pino";

/** The policy in force, and a way to wait for the next one. */
export interface ActivePolicy {
  /** The policy in force; its revision also names the grants in force, so a new grant empties the proxies' caches. */
  readonly current: Policy;
  /** Grants in force (JIT access issued by approvals). */
  readonly grants: readonly ActiveGrant[];
  /** Resolves when another policy is activated, or when `signal` aborts. */
  changed(signal: AbortSignal): Promise<void>;
}

const EFFECTS: Record<RuleEffect, Effect> = {
  allow: Effect.ALLOW,
  deny: Effect.DENY,
  require_approval: Effect.REQUIRE_APPROVAL,
};

/** The PolicyService RPCs over the active policy. */
export function policyHandlers(active: ActivePolicy, logger: Logger): ServiceImpl<typeof PolicyService> {
  return {
    async decide(request) {
      const principal = principalOf(request.principal);
      const target = targetOf(request.target);
      const policy = active.current; // one revision for the whole request
      const decision = decide(policy, { principal, target, statements: request.statements, grants: active.grants });
      logger.debug(
        {
          sessionId: request.sessionId,
          subject: principal.subject,
          target,
          effect: decision.effect,
          rule: decision.rule,
          revision: policy.revision,
        },
        "decided",
      );
      return {
        effect: EFFECTS[decision.effect],
        rule: decision.rule ?? "",
        reason: decision.reason,
        revision: policy.revision,
        approverGroups: decision.approverGroups,
        approvalsRequired: decision.approvalsRequired,
        masks: masksApplying(policy, principal).map((m) => ({
          column: m.column,
          strategy: m.strategy,
          keep: m.keep ?? 0,
        })),
        refuseMaskedPredicates: policy.refuseMaskedPredicates,
        maskedPredicates: policy.maskedPredicates,
      };
    },

    async describeSession(request) {
      const policy = active.current;
      const principal = principalOf(request.principal);
      const target = targetOf(request.target);
      // A grant of anything beyond reading opens the session read-write (sessions opened before it stay as they are).
      const granted = active.grants.some(
        (g) =>
          g.subject === principal.subject &&
          g.issuer === (principal.issuer ?? "") &&
          g.target === target &&
          g.classes.some((c) => !READ_ONLY_CLASSES.has(c)),
      );
      return { readOnly: !granted && readOnly(policy, principal, target), revision: policy.revision };
    },

    // Sends the revision in force, then each new one; a subscriber that falls behind gets the latest, not every one.
    async *watchRevision(_request, { signal }) {
      let sent: string | undefined;
      while (!signal.aborted) {
        const { revision } = active.current;
        if (revision !== sent) {
          sent = revision;
          yield { revision };
        } else {
          await active.changed(signal);
        }
      }
    },
  };
}

function principalOf(principal: Principal | undefined): PrincipalFacts {
  if (principal === undefined) throw new GrpcError(Code.INVALID_ARGUMENT, "principal is required");
  return { subject: principal.subject, groups: principal.groups, issuer: principal.issuer };
}

function targetOf(target: string): string {
  if (target === "") throw new GrpcError(Code.INVALID_ARGUMENT, "target is required");
  return target;
}
