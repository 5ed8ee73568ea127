export { READ_ONLY_CLASSES, STATEMENT_CLASSES, type StatementClass } from "./classes.ts";
export {
  type ActiveGrant,
  compilePolicy,
  type DecideInput,
  type Decision,
  decide,
  masksApplying,
  type Policy,
  type PrincipalFacts,
  readOnly,
  type StatementFacts,
} from "./decide.ts";
export { formatIssue, RulesError, type RulesIssue } from "./errors.ts";
export { compileRelationPattern, type RelationMatcher } from "./relations.ts";
export {
  canonicalRules,
  DEFAULT_MASKED_PREDICATES,
  MASKED_PREDICATES,
  type MaskedPredicates,
  type PolicyDocument,
  type PolicyServiceConfig,
  parsePolicyDocument,
  parsePolicyYaml,
  parseRules,
  parseRulesDocument,
  parseRulesYaml,
  policyServiceSchema,
  type Rule,
  type RuleEffect,
  type RuleMatch,
  ruleSchema,
  rulesDocumentSchema,
  rulesSchema,
} from "./rules.ts";
