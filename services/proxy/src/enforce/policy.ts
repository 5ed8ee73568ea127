import type { StatementFactsSchema } from "@agentgate/events";
import type { Principal } from "@agentgate/identity";
import type { MaskedPredicates, MaskRule } from "@agentgate/masking";
import type { MessageInitShape } from "@bufbuild/protobuf";

export type Effect = "allow" | "deny" | "require_approval";

export interface Decision {
  effect: Effect;
  rule: string;
  reason: string;
  revision: string;
  /** Mask rules that apply to the principal under this revision (already filtered by its groups). */
  masks: MaskRule[];
  /** For require_approval: who may approve, and how many approvals are needed. */
  approverGroups: string[];
  approvalsRequired: number;
  /** What a masked column may be used for besides being returned (whole-value unless the policy says). */
  maskedPredicates: MaskedPredicates;
}

/** What the policy needs to know about one statement (the analysis, reduced), as proto/ defines it. */
export type StatementFacts = Required<Omit<MessageInitShape<typeof StatementFactsSchema>, "$typeName">>;

export interface DecideQuery {
  principal: Principal | undefined;
  /** principalKey(principal, target), computed once per session: it sorts the groups. */
  principalKey: string;
  target: string;
  sessionId: string;
  sql: string;
  statements: StatementFacts[];
  /** Equal keys mean equal facts: the cache key, without the revision (the port adds it). */
  cacheKey: string;
}

/** The proxy's view of the policy service: cached decisions answer at once, others take a round trip. */
export interface PolicyPort {
  /** A decision made under the revision in force, if one is cached. */
  cached(query: DecideQuery): Decision | undefined;
  /** Asks the service (and caches the answer); rejects when it cannot be reached. */
  decide(query: DecideQuery, signal?: AbortSignal): Promise<Decision>;
  /** Whether the principal may only read on the target (its upstream session is then read-only). */
  readOnly(principal: Principal | undefined, target: string, signal?: AbortSignal): Promise<boolean>;
  close(): void;
}

/** The part of a cache key that names who asks where. */
export function principalKey(principal: Principal | undefined, target: string): string {
  if (principal === undefined) return `\u0000anonymous\u0000${target}`;
  return `${principal.issuer}\u0000${principal.subject}\u0000${[...principal.groups].sort().join(",")}\u0000${target}`;
}

/**
 * Decisions by (revision, principal, target, statement facts), bounded: the oldest entries go first. A new revision
 * empties it, since any decision may have changed.
 */
export class DecisionCache {
  readonly #max: number;
  #revision = "";
  #entries = new Map<string, Decision>();

  constructor(max = 10_000) {
    this.#max = max;
  }

  get revision(): string {
    return this.#revision;
  }

  /** Switches to `revision`; returns whether it changed (and the cache was emptied). */
  setRevision(revision: string): boolean {
    if (revision === this.#revision) return false;
    this.#revision = revision;
    this.#entries.clear();
    return true;
  }

  get(key: string): Decision | undefined {
    return this.#entries.get(key);
  }

  set(key: string, decision: Decision): void {
    if (decision.revision !== this.#revision) {
      // An answer under another revision than the one we hold: trust the newer one the service reports.
      this.setRevision(decision.revision);
    }
    if (this.#entries.size >= this.#max) this.#entries.delete(this.#entries.keys().next().value!);
    this.#entries.set(key, decision);
  }
}
