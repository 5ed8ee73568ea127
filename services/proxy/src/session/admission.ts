import type { Target } from "@agentgate/config";
import type { Principal } from "@agentgate/identity";
import type { Logger } from "pino";
import { Backstop } from "../enforce/backstop.ts";
import { createEstimator } from "../enforce/estimate.ts";
import { StatementGate } from "../enforce/gate.ts";
import type { PolicyPort } from "../enforce/policy.ts";
import type { MaskCatalog } from "../mask/catalog.ts";
import type { SessionMasking } from "../mask/planner.ts";
import type { SessionContext } from "./context.ts";

/** What a session under a policy runs its statements with, set up before its upstream connection opens. */
export interface Enforcement {
  gate: StatementGate;
  backstop: Backstop;
  masking: SessionMasking | undefined;
  maskCatalog: MaskCatalog | undefined;
}

/**
 * Asks the policy whether the principal may only read on the target (when it cannot say: read-only, fail closed),
 * makes sure the target's catalog is loaded, loads masking, and builds the session's gate and backstop.
 */
export async function enforcementFor(
  ctx: SessionContext,
  policy: PolicyPort,
  session: { target: Target; principal: Principal | undefined; sessionId: string; log: Logger; signal: AbortSignal },
): Promise<Enforcement> {
  const { target, principal, log } = session;
  const catalog = ctx.catalogs.get(target.name);
  const [readOnly, , masking] = await Promise.all([
    policy.readOnly(principal, target.name, session.signal).catch((error: unknown) => {
      // Unknown: fail closed. Every uncached statement is refused anyway while the service is away.
      log.warn({ err: error }, "policy service unavailable at session start: the session is read-only");
      return true;
    }),
    catalog?.fresh(),
    ctx.masking?.(target),
  ]);
  const approvals = ctx.approvals;
  const gate = new StatementGate({
    policy,
    approvals: approvals && {
      ...approvals,
      estimate: createEstimator(target, ctx.upstreamTls.get(target.name), log),
    },
    principal,
    target: target.name,
    sessionId: session.sessionId,
    readOnly,
    catalog,
    logger: log,
  });
  log.debug({ readOnly }, "policy applies to this session");
  return {
    gate,
    backstop: new Backstop({ readOnlySession: readOnly }),
    masking: masking && new masking.SessionMasking({ catalog: masking.catalog, hasher: ctx.hasher, logger: log }),
    maskCatalog: masking?.catalog,
  };
}
