import { createHash } from "node:crypto";
import { canonicalRules, compilePolicy, type Policy, type PolicyDocument } from "@agentgate/policy";

/**
 * The first 12 hex digits of the SHA-256 of the policy's canonical form: equal policies, equal revision. Statement
 * rules alone hash as they always did; masks and the predicate switch are appended when present.
 */
export function revisionOf(document: PolicyDocument): string {
  const hash = createHash("sha256").update(canonicalRules(document.rules));
  if (document.masks.length > 0 || document.maskedPredicates !== "allow") {
    hash.update(`\nmasks ${JSON.stringify(document.masks)} predicates ${document.maskedPredicates}`);
  }
  return hash.digest("hex").slice(0, 12);
}

/** Compiles a policy under its content revision. */
export function policyOf(document: PolicyDocument): Policy {
  return compilePolicy(document.rules, revisionOf(document), document);
}
