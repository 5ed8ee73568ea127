import { PolicyService, PrincipalSchema, Effect as WireEffect } from "@agentgate/events";
import { createClient } from "@agentgate/grpc";
import type { Principal } from "@agentgate/identity";
import { MASKED_PREDICATES, type MaskedPredicates, type MaskRule } from "@agentgate/masking";
import { create } from "@bufbuild/protobuf";
import type { Logger } from "pino";
import { type DecideQuery, type Decision, DecisionCache, type Effect, type PolicyPort } from "./policy.ts";

const EFFECTS: Record<number, Effect> = {
  [WireEffect.ALLOW]: "allow",
  [WireEffect.DENY]: "deny",
  [WireEffect.REQUIRE_APPROVAL]: "require_approval",
};

export interface GrpcPolicyOptions {
  /** host:port of the policy service. */
  address: string;
  /** How long one Decide may take before the statement is refused. */
  deadlineMs: number;
  logger: Logger;
}

/**
 * The policy service over gRPC, with a decision cache that the service's revision stream keeps honest: a new
 * revision empties the cache. While the service is unreachable, cached decisions keep answering.
 */
export function createGrpcPolicy(options: GrpcPolicyOptions): PolicyPort {
  const client = createClient(PolicyService, options.address);
  const cache = new DecisionCache();
  const closing = new AbortController();
  watchRevisions(client, cache, closing.signal, options.logger);

  const wirePrincipal = (p: Principal | undefined) =>
    create(
      PrincipalSchema,
      p ? { subject: p.subject, groups: p.groups, issuer: p.issuer, clientId: p.clientId ?? "" } : {},
    );
  const key = (q: DecideQuery) => `${q.principalKey}\u0000${q.cacheKey}`;

  return {
    cached: (query) => cache.get(key(query)),
    async decide(query, signal) {
      const response = await client.decide(
        {
          principal: wirePrincipal(query.principal),
          target: query.target,
          sessionId: query.sessionId,
          sql: query.sql,
          statements: query.statements,
        },
        { signal, deadlineMs: options.deadlineMs },
      );
      const decision: Decision = {
        effect: EFFECTS[response.effect] ?? "deny",
        rule: response.rule,
        reason: response.reason,
        revision: response.revision,
        // Checked where they are applied (the masking planner): an unknown strategy is applied as redact.
        masks: response.masks.map((m) => ({ column: m.column, strategy: m.strategy, keep: m.keep }) as MaskRule),
        approverGroups: response.approverGroups,
        approvalsRequired: response.approvalsRequired,
        maskedPredicates: maskedPredicatesOf(response.maskedPredicates, response.refuseMaskedPredicates),
      };
      cache.set(key(query), decision);
      return decision;
    },
    async readOnly(principal, target, signal) {
      const response = await client.describeSession(
        { principal: wirePrincipal(principal), target },
        { signal, deadlineMs: options.deadlineMs },
      );
      return response.readOnly;
    },
    close() {
      closing.abort();
      client.close();
    },
  };
}

/** Follows the service's revision stream for as long as the proxy runs, reconnecting with backoff. */
async function watchRevisions(
  client: ReturnType<typeof createClient<typeof PolicyService>>,
  cache: DecisionCache,
  signal: AbortSignal,
  logger: Logger,
): Promise<void> {
  let backoffMs = 100;
  while (!signal.aborted) {
    try {
      for await (const { revision } of client.watchRevision({}, { signal })) {
        backoffMs = 100;
        if (cache.setRevision(revision)) logger.info({ revision }, "policy revision in force");
      }
    } catch (error) {
      if (signal.aborted) return;
      logger.debug({ err: error }, "policy revision stream interrupted");
    }
    await new Promise((resolve) => setTimeout(resolve, backoffMs).unref());
    backoffMs = Math.min(backoffMs * 2, 5000);
  }
}

/** The policy's maskedPredicates; from a service that only sends the switch, refuse or the safe default. */
function maskedPredicatesOf(mode: string, refuse: boolean): MaskedPredicates {
  if ((MASKED_PREDICATES as readonly string[]).includes(mode)) return mode as MaskedPredicates;
  // An unknown mode from a newer service is judged as the strictest this proxy knows.
  if (mode !== "") return "refuse";
  return refuse ? "refuse" : "whole-value";
}
