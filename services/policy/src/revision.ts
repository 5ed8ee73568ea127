import { createHash } from "node:crypto";
import {
  canonicalRules,
  compilePolicy,
  DEFAULT_MASKED_PREDICATES,
  type Policy,
  type PolicyDocument,
} from "@agentgate/policy";

/**
 * The first 12 hex digits of the SHA-256 of the policy's canonical form: equal policies, equal revision. Statement
 * rules alone hash as they always did; masks and the predicate mode are appended when present (or not the default).
 */
export function revisionOf(document: PolicyDocument): string {
  const hash = createHash("sha256").update(canonicalRules(document.rules));
  if (document.masks.length > 0 || document.maskedPredicates !== DEFAULT_MASKED_PREDICATES) {
    hash.update(`\nmasks ${JSON.stringify(document.masks)} predicates ${document.maskedPredicates}`);
  }
  return hash.digest("hex").slice(0, 12);
}

/** Compiles a policy under its content revision. */
export function policyOf(document: PolicyDocument): Policy {
  return compilePolicy(document.rules, revisionOf(document), document);
}
