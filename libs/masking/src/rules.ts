import { z } from "zod";
import { MaskingError, type MaskRulesIssue } from "./errors.ts";

/** How a masked value is replaced (values.ts says what each type gets). */
export const MASK_STRATEGIES = ["redact", "partial", "hash", "null"] as const;
export type MaskStrategy = (typeof MASK_STRATEGIES)[number];

/**
 * What a principal with masks may do with a masked column besides reading it (the policy's `maskedPredicates`):
 * - whole-value (the default): compare it whole with constants or parameters (`=`, `<>`, `IN`, `= ANY($1)`,
 *   `IS NULL`); a `hash` column may also be compared with another hash column (joins) and grouped by; anything else
 *   (ranges, patterns, functions of it in a condition, ORDER BY, GROUP BY, windows, a computation that may fail on
 *   it) is refused, since it would let parts of the value be inferred from which rows come back, in what order, or
 *   whether the statement fails;
 * - refuse: no use at all besides reading it, not even whole-value lookups;
 * - allow: any use (an explicit opt-out: values can then be spelled out by predicates).
 */
export const MASKED_PREDICATES = ["whole-value", "refuse", "allow"] as const;
export type MaskedPredicates = (typeof MASKED_PREDICATES)[number];
export const DEFAULT_MASKED_PREDICATES: MaskedPredicates = "whole-value";

/** Characters left in clear by `partial` when the rule does not say. */
export const DEFAULT_KEEP = 4;

/**
 * `schema.table.column`, each part a name or a pattern where `*` matches any run of characters within that part.
 * Matching is case-sensitive, as PostgreSQL is after folding unquoted names (the catalog gives the real names).
 */
const columnPattern = z
  .string()
  .regex(/^[^\s.]+\.[^\s.]+\.[^\s.]+$/, "expected schema.table.column, e.g. public.customers.email or *.*.ssn");

export const maskRuleSchema = z
  .strictObject({
    column: columnPattern,
    strategy: z.enum(MASK_STRATEGIES),
    /** partial only: trailing characters left in clear (default 4, never more than half the value). */
    keep: z.number().int().min(1).max(64).optional(),
    groups: z
      .strictObject({
        /** Principals in any of these groups see the column in clear (as far as this rule goes). */
        unmasked: z.array(z.string().min(1)).min(1, "an empty list exempts nobody; leave the key out").optional(),
      })
      .optional(),
  })
  .superRefine((rule, context) => {
    if (rule.keep !== undefined && rule.strategy !== "partial") {
      context.addIssue({ code: "custom", path: ["keep"], message: `only applies to partial, not ${rule.strategy}` });
    }
  });

/** The rules in the order written (the order breaks ties between equally strict rules). */
export const maskRulesSchema = z.array(maskRuleSchema);

export type MaskRule = z.infer<typeof maskRuleSchema>;

/** Validates mask rules; throws a MaskingError (invalid_rules) naming every offending key, never a value. */
export function parseMaskRules(input: unknown): MaskRule[] {
  const result = maskRulesSchema.safeParse(input);
  if (result.success) return result.data;
  const issues: MaskRulesIssue[] = result.error.issues.map((issue) => ({
    key: issue.path.map((part) => (typeof part === "number" ? `[${part}]` : `.${String(part)}`)).join(""),
    reason: issue.message,
  }));
  const first = issues[0]!;
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : "";
  throw new MaskingError("invalid_rules", `mask rules${first.key}: ${first.reason}${more}`, { issues });
}

/** What to do with one output column. */
export interface Mask {
  /** A rule's strategy, or "detect": run the content detectors over a text value (see DETECT). */
  readonly strategy: MaskStrategy | "detect";
  /** partial: trailing characters left in clear (capped at half the value's length). */
  readonly keep: number;
  /** The column pattern of the rule that decided, for audit events ("" for detect). Never a value. */
  readonly rule: string;
  /**
   * Set when the value is computed from the masked column (see derivedMask): it is redacted whole, never shown in
   * part or hashed, and is no whole value to compare.
   */
  readonly derived?: true;
}

/**
 * The mask of a value computed from a column masked by `mask` (a function, cast, operator or whole-row reference
 * over it). `partial` would show the tail of whatever is computed, so a few substr() windows would give the whole
 * value back; `hash` of a part is a dictionary of that part: both become redact. `redact` and `null` stay.
 */
export function derivedMask(mask: Mask | undefined): Mask | undefined {
  if (mask === undefined || mask.strategy === "detect" || mask.derived === true) return mask;
  const strategy = mask.strategy === "partial" || mask.strategy === "hash" ? "redact" : mask.strategy;
  return Object.freeze({ strategy, keep: 0, rule: mask.rule, derived: true });
}

/**
 * Not a rule: what the proxy puts in a plan for a text column whose provenance is unknown, so the content detectors
 * (e-mail, card numbers, keys...) redact what they recognise inside it and leave the rest.
 */
export const DETECT: Mask = Object.freeze({ strategy: "detect", keep: 0, rule: "" });

/** The masks that apply to one principal. */
export interface ColumnMatcher {
  /** The mask for a catalog column, or undefined when the principal sees it in clear. */
  strategyFor(schema: string, table: string, column: string): Mask | undefined;
  /** True when no rule applies to this principal at all: the proxy can skip planning. */
  readonly empty: boolean;
}

// The strictest mask wins when several rules match: null hides even NULL-ness, redact hides the value, hash keeps
// equality, partial shows a tail (the smaller the tail, the stricter).
const STRICTNESS: Record<MaskStrategy, number> = { null: 4, redact: 3, hash: 2, partial: 1 };

/**
 * The masks for a principal in `principalGroups`. A rule applies unless the principal is in one of its
 * `groups.unmasked`; of the rules that apply and match a column, the strictest decides (null > redact > hash >
 * partial, a smaller `keep` being stricter), the first written among equals. So an exemption in one rule never
 * lifts another rule that also covers the column.
 */
export function masksFor(rules: readonly MaskRule[], principalGroups: Iterable<string>): ColumnMatcher {
  const groups = new Set(principalGroups);
  const applicable = rules
    .filter((rule) => !(rule.groups?.unmasked ?? []).some((group) => groups.has(group)))
    .map((rule) => ({
      match: compileColumnPattern(rule.column),
      mask: Object.freeze({
        strategy: rule.strategy,
        keep: rule.strategy === "partial" ? (rule.keep ?? DEFAULT_KEEP) : 0,
        rule: rule.column,
      }) satisfies Mask,
    }));
  return {
    empty: applicable.length === 0,
    strategyFor(schema, table, column) {
      let best: Mask | undefined;
      for (const { match, mask } of applicable) {
        if (!match(schema, table, column)) continue;
        if (best === undefined || stricter(mask, best)) best = mask;
      }
      return best;
    },
  };
}

/** The stricter of two masks (either may be absent); `a` among equals. */
export function strictest(a: Mask | undefined, b: Mask | undefined): Mask | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return stricter(b, a) ? b : a;
}

function stricter(a: Mask, b: Mask): boolean {
  if (a.strategy === "detect" || b.strategy === "detect") return false;
  const rank = STRICTNESS[a.strategy] - STRICTNESS[b.strategy];
  if (rank !== 0) return rank > 0;
  // Among equals, a derived value (no whole value to compare) is the stricter.
  if (a.derived !== b.derived) return a.derived === true;
  return a.strategy === "partial" && a.keep < b.keep;
}

type ColumnTest = (schema: string, table: string, column: string) => boolean;

/** Compiles `schema.table.column` with `*` wildcards per part. */
export function compileColumnPattern(pattern: string): ColumnTest {
  const [schema, table, column] = pattern.split(".").map(compilePart);
  if (schema === undefined || table === undefined || column === undefined) {
    throw new MaskingError("invalid_rules", "a column pattern has three parts: schema.table.column");
  }
  return (s, t, c) => schema(s) && table(t) && column(c);
}

function compilePart(part: string): (name: string) => boolean {
  if (part === "*") return () => true;
  if (!part.includes("*")) return (name) => name === part;
  const body = part
    .split("*")
    .map((literal) => literal.replace(/[\\^$.|?+()[\]{}]/g, "\\$&"))
    .join(".*");
  const regex = new RegExp(`^${body}$`, "s");
  return (name) => regex.test(name);
}
