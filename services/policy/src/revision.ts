import { createHash } from "node:crypto";
import { canonicalRules, compilePolicy, type Policy, type Rule } from "@agentgate/policy";

/** The first 12 hex digits of the SHA-256 of the rules' canonical form: equal rules, equal revision. */
export function revisionOf(rules: readonly Rule[]): string {
  return createHash("sha256").update(canonicalRules(rules)).digest("hex").slice(0, 12);
}

/** Compiles rules under their content revision. */
export function policyOf(rules: readonly Rule[]): Policy {
  return compilePolicy(rules, revisionOf(rules));
}
