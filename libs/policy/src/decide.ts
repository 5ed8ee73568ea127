import { DEFAULT_MASKED_PREDICATES, type MaskedPredicates, type MaskRule } from "@agentgate/masking/rules";
import { READ_ONLY_CLASSES } from "./classes.ts";
import { compileRelationPattern, type RelationMatcher } from "./relations.ts";
import type { Rule, RuleEffect } from "./rules.ts";

/** Validated rules ready to evaluate, and the revision they were loaded as. */
export interface Policy {
  readonly revision: string;
  readonly rules: readonly CompiledRule[];
  /** Columns masked in results (see masksApplying). */
  readonly masks: readonly MaskRule[];
  /** What a masked column may be used for besides being returned (see MASKED_PREDICATES). */
  readonly maskedPredicates: MaskedPredicates;
  /** maskedPredicates === "refuse", for proxies that only know the switch. */
  readonly refuseMaskedPredicates: boolean;
}

interface CompiledRule {
  readonly index: number;
  readonly name: string;
  readonly effect: RuleEffect;
  readonly groups: ReadonlySet<string> | undefined;
  readonly subjects: ReadonlySet<string> | undefined;
  readonly targets: ReadonlySet<string> | undefined;
  readonly classes: ReadonlySet<string> | undefined;
  readonly relations: readonly RelationMatcher[] | undefined;
  readonly approvers: readonly string[];
  readonly approvals: number;
  readonly reason: string | undefined;
}

export interface PrincipalFacts {
  subject: string;
  groups: readonly string[];
  /** The token's issuer; a grant matches a principal by issuer and subject. */
  issuer?: string;
}

/** Time-boxed access issued by an approval (JIT): `classes` on `target` for this principal, while it lasts. */
export interface ActiveGrant {
  id: string;
  subject: string;
  issuer: string;
  target: string;
  classes: readonly string[];
}

/** What the SQL analysis says about one statement (the proto's StatementFacts fits). */
export interface StatementFacts {
  class?: string;
  classes?: readonly string[];
  reads?: readonly string[];
  writes?: readonly string[];
  /** Set when the statement changes a protected setting: then it is a privilege statement whatever else it is. */
  protectedSetting?: string;
}

export interface DecideInput {
  principal: PrincipalFacts;
  target: string;
  statements: readonly StatementFacts[];
  /** Grants in force; one that covers a class allows it where no rule does (explicit rules still win). */
  grants?: readonly ActiveGrant[];
}

export interface Decision {
  effect: RuleEffect;
  /** The deciding rule; absent when no rule matched (the default, deny). */
  rule?: string;
  /** A sentence fit for the client's error message. */
  reason: string;
  /** For require_approval: members of any of these groups may approve. */
  approverGroups: string[];
  /** For require_approval: how many approvals are needed; 0 otherwise. */
  approvalsRequired: number;
}

/**
 * Compiles validated rules. `revision` names this rule set (the service hashes `canonicalRules(rules)`; hashing is
 * left to it so that this library stays free of I/O and `node:*`).
 */
export function compilePolicy(
  rules: readonly Rule[],
  revision: string,
  masking: { masks?: readonly MaskRule[]; maskedPredicates?: MaskedPredicates } = {},
): Policy {
  const maskedPredicates = masking.maskedPredicates ?? DEFAULT_MASKED_PREDICATES;
  return {
    revision,
    masks: masking.masks ?? [],
    maskedPredicates,
    refuseMaskedPredicates: maskedPredicates === "refuse",
    rules: rules.map((rule, index) => ({
      index,
      name: rule.name,
      effect: rule.effect,
      groups: set(rule.match?.groups),
      subjects: set(rule.match?.subjects),
      targets: set(rule.match?.targets),
      classes: set(rule.match?.classes),
      relations: rule.match?.relations?.map(compileRelationPattern),
      approvers: rule.approvers ?? [],
      approvals: rule.effect === "require_approval" ? (rule.approvals ?? 1) : 0,
      reason: rule.reason,
    })),
  };
}

function set(values: readonly string[] | undefined): ReadonlySet<string> | undefined {
  return values === undefined ? undefined : new Set(values);
}

const SEVERITY: Record<RuleEffect, number> = { allow: 0, require_approval: 1, deny: 2 };

/** One class of one statement, decided. `rule` is undefined for the default deny. */
interface Verdict {
  effect: RuleEffect;
  rule: CompiledRule | undefined;
  reason: string;
}

/**
 * Decides a request: each class of each statement is decided by the rules that match it (deny over
 * require_approval over allow; no matching rule denies); the request gets the worst of them, reported with the rule
 * that produced it (the first in file order among equals).
 */
export function decide(policy: Policy, input: DecideInput): Decision {
  if (input.statements.length === 0) {
    return finish([{ effect: "deny", rule: undefined, reason: "there is no statement to decide" }]);
  }
  const verdicts = input.statements.flatMap((statement) => decideStatement(policy, input, statement));
  return finish(verdicts);
}

function decideStatement(policy: Policy, input: DecideInput, statement: StatementFacts): Verdict[] {
  const classes = classesOf(statement);
  if (classes.length === 0)
    return [{ effect: "deny", rule: undefined, reason: "the statement could not be classified" }];
  const relations = [...new Set([...(statement.reads ?? []), ...(statement.writes ?? [])])];
  return classes.map((statementClass) => decideClass(policy, input, statementClass, relations));
}

function classesOf(statement: StatementFacts): string[] {
  const classes = new Set(statement.classes ?? []);
  if (statement.class) classes.add(statement.class);
  if (statement.protectedSetting) classes.add("privilege");
  classes.delete("");
  return [...classes];
}

function decideClass(
  policy: Policy,
  input: DecideInput,
  statementClass: string,
  relations: readonly string[],
): Verdict {
  let found: CompiledRule | undefined;
  for (const rule of policy.rules) {
    if (found !== undefined && SEVERITY[rule.effect] <= SEVERITY[found.effect]) continue;
    if (!appliesTo(rule, input.principal, input.target) || !matchesStatement(rule, statementClass, relations)) continue;
    found = rule;
    if (rule.effect === "deny") break;
  }
  const on = `${statementClass} on ${input.target}`;
  if (found === undefined) {
    const grant = input.grants?.find(
      (g) =>
        g.subject === input.principal.subject &&
        g.issuer === (input.principal.issuer ?? "") &&
        g.target === input.target &&
        g.classes.includes(statementClass),
    );
    if (grant !== undefined)
      return { effect: "allow", rule: grantRule(grant), reason: `grant ${grant.id} allows ${on}` };
    return { effect: "deny", rule: undefined, reason: `no rule allows ${on}` };
  }
  const reason =
    found.reason ??
    (found.effect === "allow"
      ? `rule "${found.name}" allows ${on}`
      : found.effect === "deny"
        ? `rule "${found.name}" denies ${on}`
        : `rule "${found.name}" requires approval for ${on}`);
  return { effect: found.effect, rule: found, reason };
}

/** Whether the rule's principal and target criteria hold. */
function appliesTo(rule: CompiledRule, principal: PrincipalFacts, target: string): boolean {
  if (rule.subjects !== undefined && !rule.subjects.has(principal.subject)) return false;
  if (rule.groups !== undefined && !principal.groups.some((group) => rule.groups!.has(group))) return false;
  return rule.targets === undefined || rule.targets.has(target);
}

// Restrictive rules fire on any listed relation; an allow rule must cover every relation the statement touches, so
// that allowing reads of `orders` does not allow `SELECT ... FROM orders JOIN secrets`.
function matchesStatement(rule: CompiledRule, statementClass: string, relations: readonly string[]): boolean {
  if (rule.classes !== undefined && !rule.classes.has(statementClass)) return false;
  const patterns = rule.relations;
  if (patterns === undefined) return true;
  const covered = (relation: string) => patterns.some((matches) => matches(relation));
  return rule.effect === "allow" ? relations.length > 0 && relations.every(covered) : relations.some(covered);
}

function finish(verdicts: readonly Verdict[]): Decision {
  const worst = verdicts.reduce((a, b) => (outranks(b, a) ? b : a));
  if (worst.effect === "require_approval") return approval(worst, verdicts);
  return {
    effect: worst.effect,
    ...(worst.rule ? { rule: worst.rule.name } : {}),
    reason: worst.reason,
    approverGroups: [],
    approvalsRequired: 0,
  };
}

// Worse effect first; among equals an explicit rule before the default deny, then the earlier rule in the file.
function outranks(a: Verdict, b: Verdict): boolean {
  if (SEVERITY[a.effect] !== SEVERITY[b.effect]) return SEVERITY[a.effect] > SEVERITY[b.effect];
  if (a.rule === undefined || b.rule === undefined) return a.rule !== undefined && b.rule === undefined;
  return a.rule.index < b.rule.index;
}

// Several rules may ask for approval of one request: one approval must satisfy each of them, so the approvers are the
// groups every such rule names and the count the largest. When no group is named by all, nobody can approve: deny.
function approval(first: Verdict, verdicts: readonly Verdict[]): Decision {
  const rules = [...new Set(verdicts.filter((v) => v.effect === "require_approval").map((v) => v.rule!))];
  const approverGroups = first.rule!.approvers.filter((group) => rules.every((rule) => rule.approvers.includes(group)));
  if (approverGroups.length === 0) {
    const names = rules.map((rule) => `"${rule.name}"`).join(", ");
    return {
      effect: "deny",
      rule: first.rule!.name,
      reason: `rules ${names} require approval from different groups; send these statements separately`,
      approverGroups: [],
      approvalsRequired: 0,
    };
  }
  return {
    effect: "require_approval",
    rule: first.rule!.name,
    reason: first.reason,
    approverGroups,
    approvalsRequired: Math.max(...rules.map((rule) => rule.approvals)),
  };
}

/**
 * Whether a session of this principal on this target can only read: no rule that can apply to them allows (or
 * requires approval for) anything but read, copy-out, session and transaction.
 */
export function readOnly(policy: Policy, principal: PrincipalFacts, target: string): boolean {
  return policy.rules.every(
    (rule) =>
      rule.effect === "deny" ||
      !appliesTo(rule, principal, target) ||
      (rule.classes !== undefined && [...rule.classes].every((c) => READ_ONLY_CLASSES.has(c))),
  );
}

/**
 * The mask rules that apply to a principal: every rule except those whose `groups.unmasked` names one of its
 * groups. The proxy masks by these (the strictest match wins per column, see @agentgate/masking masksFor).
 */
export function masksApplying(policy: Policy, principal: PrincipalFacts): MaskRule[] {
  const groups = new Set(principal.groups);
  return policy.masks.filter((rule) => !(rule.groups?.unmasked ?? []).some((group) => groups.has(group)));
}

/** A grant as the rule that decided: reported as "grant <id>", after every written rule among equals. */
function grantRule(grant: ActiveGrant): CompiledRule {
  return {
    index: Number.MAX_SAFE_INTEGER,
    name: `grant ${grant.id}`,
    effect: "allow",
    groups: undefined,
    subjects: undefined,
    targets: undefined,
    classes: undefined,
    relations: undefined,
    approvers: [],
    approvals: 0,
    reason: undefined,
  };
}
