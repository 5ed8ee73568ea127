// The rules module alone: the policy (and the config that embeds it) need not load the masking engine.
import {
  DEFAULT_MASKED_PREDICATES,
  MASKED_PREDICATES,
  type MaskedPredicates,
  type MaskRule,
  maskRulesSchema,
} from "@agentgate/masking/rules";
import { parse as parseYaml } from "yaml";
import { type ZodType, z } from "zod";
import { STATEMENT_CLASSES } from "./classes.ts";
import { RulesError, type RulesIssue } from "./errors.ts";

// An empty list would silently match nothing; leaving the key out is how a rule says "any".
function criteria<T extends ZodType>(item: T) {
  return z.array(item).min(1, "an empty list matches nothing; leave the key out to match any").optional();
}

const name = z.string().min(1);

/**
 * A relation pattern: dot-separated parts where `*` matches any run of characters within one part. It is compared
 * with the relation's last parts, so `orders` matches `orders` and `public.orders`, `audit.*` matches `audit.log`.
 */
const relationPattern = z
  .string()
  .min(1)
  .regex(/^[^\s.]+(\.[^\s.]+)*$/, "expected a relation pattern such as orders, public.orders or audit.*");

const matchSchema = z.strictObject({
  /** The principal is in any of these groups. */
  groups: criteria(name),
  /** The principal's subject (the token's `sub`) is one of these. */
  subjects: criteria(name),
  /** The session's target is one of these configured target names. */
  targets: criteria(name),
  /** The class being decided is one of these. */
  classes: criteria(z.enum(STATEMENT_CLASSES)),
  /**
   * Relations the statement reads or writes. A deny or require_approval rule holds when any of them matches a
   * pattern; an allow rule only when the statement touches relations and every one of them matches.
   */
  relations: criteria(relationPattern),
});

export const ruleSchema = z
  .strictObject({
    /** Unique; reported with every decision the rule makes. */
    name,
    /** Every given criterion must hold; without `match` the rule matches every statement. */
    match: matchSchema.optional(),
    effect: z.enum(["allow", "deny", "require_approval"]),
    /** Groups whose members may approve (require_approval only, and required there). */
    approvers: criteria(name),
    /** Approvals needed (require_approval only); default 1. */
    approvals: z.number().int().min(1).max(100).optional(),
    /** Told to the client with the decision; default: a sentence naming the rule, the class and the target. */
    reason: z.string().min(1).max(500).optional(),
  })
  .superRefine((rule, context) => {
    if (rule.effect === "require_approval") {
      if (rule.approvers === undefined) {
        context.addIssue({
          code: "custom",
          path: ["approvers"],
          message: "required for require_approval: the groups that may approve",
        });
      }
      return;
    }
    for (const key of ["approvers", "approvals"] as const) {
      if (rule[key] !== undefined) {
        context.addIssue({
          code: "custom",
          path: [key],
          message: `only applies to require_approval, not ${rule.effect}`,
        });
      }
    }
  });

/** The rules, in the order they are written (order decides which rule is reported among equals). */
export const rulesSchema = z.array(ruleSchema).superRefine((rules, context) => {
  const seen = new Map<string, number>();
  rules.forEach((rule, index) => {
    const first = seen.get(rule.name);
    if (first === undefined) seen.set(rule.name, index);
    else
      context.addIssue({
        code: "custom",
        path: [index, "name"],
        message: `duplicate rule name (first used by rules[${first}])`,
      });
  });
});

/**
 * What a principal with masks may do with a masked column besides reading it: `whole-value` (the default: compare it
 * whole with constants or parameters; hash columns may also be joined and grouped by), `refuse` (nothing) or `allow`
 * (anything: predicates can then spell values out). See @agentgate/masking's MASKED_PREDICATES.
 */
export { DEFAULT_MASKED_PREDICATES, MASKED_PREDICATES, type MaskedPredicates };

/**
 * A rules file: `rules: [...]` at the top level, with optional `masks: [...]` (columns masked in results, see
 * @agentgate/masking) and `maskedPredicates: whole-value | refuse | allow` (default whole-value).
 */
export const rulesDocumentSchema = z.strictObject({
  rules: rulesSchema,
  masks: maskRulesSchema.optional(),
  maskedPredicates: z.enum(MASKED_PREDICATES).optional(),
});

/** A whole policy: statement rules, mask rules and the predicate switch. */
export interface PolicyDocument {
  rules: Rule[];
  masks: MaskRule[];
  maskedPredicates: MaskedPredicates;
}

export type Rule = z.infer<typeof ruleSchema>;
export type RuleEffect = Rule["effect"];
export type RuleMatch = NonNullable<Rule["match"]>;

const hostPort = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/, "expected host:port, e.g. 127.0.0.1:7070");

/** The `policy:` section of agentgate.yaml: where the service listens and its rules, inline or in a watched file. */
export const policyServiceSchema = z
  .strictObject({
    listen: hostPort.default("127.0.0.1:7070"),
    /** Inline rules; fixed for the life of the process. */
    rules: rulesSchema.optional(),
    /** A YAML file with `rules: [...]` (and optionally `masks` and `maskedPredicates`), watched. */
    rulesFile: z.string().min(1).optional(),
    /** Inline mask rules (with inline rules only; a rules file carries its own). */
    masks: maskRulesSchema.optional(),
    /** Inline predicate switch (with inline rules only). */
    maskedPredicates: z.enum(MASKED_PREDICATES).optional(),
    /** host:port of the approval service whose grants (JIT access) the policy honours. */
    grantsFrom: hostPort.optional(),
  })
  .superRefine((section, context) => {
    const given = (section.rules === undefined ? 0 : 1) + (section.rulesFile === undefined ? 0 : 1);
    if (given !== 1) {
      context.addIssue({
        code: "custom",
        path: [],
        message: given === 0 ? "expected rules or rulesFile" : "expected rules or rulesFile, not both",
      });
    }
    for (const key of ["masks", "maskedPredicates"] as const) {
      if (section.rulesFile !== undefined && section[key] !== undefined) {
        context.addIssue({ code: "custom", path: [key], message: "goes in the rules file when rulesFile is used" });
      }
    }
  });

export type PolicyServiceConfig = z.infer<typeof policyServiceSchema>;

/** Validates an inline list of rules; throws a RulesError naming every offending rule and key. */
export function parseRules(input: unknown, source?: string): Rule[] {
  return check(rulesSchema, input, { rules: input }, ["rules"], source);
}

/** Validates a parsed rules document (`{ rules: [...] }`). */
export function parseRulesDocument(document: unknown, source?: string): Rule[] {
  return parsePolicyDocument(document, source).rules;
}

/** Validates a parsed rules document with its masks. */
export function parsePolicyDocument(document: unknown, source?: string): PolicyDocument {
  if (document === null || document === undefined) {
    throw new RulesError([{ key: "", reason: "no rules: expected a document with rules: [...]" }], { source });
  }
  const parsed = check(rulesDocumentSchema, document, document, [], source);
  return {
    rules: parsed.rules,
    masks: parsed.masks ?? [],
    maskedPredicates: parsed.maskedPredicates ?? DEFAULT_MASKED_PREDICATES,
  };
}

/** Parses and validates the text of a rules file. */
export function parseRulesYaml(text: string, source?: string): Rule[] {
  return parsePolicyYaml(text, source).rules;
}

/** Parses and validates the text of a rules file, masks included. */
export function parsePolicyYaml(text: string, source?: string): PolicyDocument {
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (cause) {
    // The first line says what and where; the rest quotes the file.
    const first = (cause instanceof Error ? cause.message : String(cause)).split("\n")[0]!.replace(/:$/, "");
    throw new RulesError([{ key: "", reason: `not valid YAML: ${first}` }], { source, cause });
  }
  return parsePolicyDocument(document, source);
}

// `document` is the input as a `{ rules }` document and `base` the path of the input within it, so that keys and
// rule indexes read the same for inline rules and for a file.
function check<T>(
  schema: ZodType<T>,
  input: unknown,
  document: unknown,
  base: readonly PropertyKey[],
  source?: string,
): T {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) => toIssue([...base, ...issue.path], issue.message, document));
  throw new RulesError(issues, { source });
}

function toIssue(path: readonly PropertyKey[], reason: string, document: unknown): RulesIssue {
  const key = keyOf(path);
  const index = path[1];
  if (path[0] !== "rules" || typeof index !== "number") return { key, reason };
  const list = (document as { rules?: unknown }).rules;
  const name = Array.isArray(list) ? (list[index] as { name?: unknown } | undefined)?.name : undefined;
  return { key, rule: typeof name === "string" && name !== "" ? { index, name } : { index }, reason };
}

/** `["rules", 2, "match", "classes", 0]` → `rules[2].match.classes[0]` */
function keyOf(path: readonly PropertyKey[]): string {
  return path
    .map((part, i) => (typeof part === "number" ? `[${part}]` : i === 0 ? String(part) : `.${String(part)}`))
    .join("");
}

/** The rules as a stable JSON string (keys sorted), for a revision hash: formatting and comments do not count. */
export function canonicalRules(rules: readonly Rule[]): string {
  return JSON.stringify(rules, (_key, value: unknown) =>
    value !== null && typeof value === "object" && !Array.isArray(value)
      ? Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : value,
  );
}
