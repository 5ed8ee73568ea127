// Which uses of masked values a statement may make (the policy's `maskedPredicates`, see rules.ts). The lineage walk
// records every use of a value other than returning it (ColumnUse); the proxy knows each source's mask. A masked
// value may be returned (masked), and, in whole-value mode, compared whole with constants or parameters: that tells
// no more than a lookup by the value would. Everything else (a range or a pattern, a function of it in a condition,
// ORDER BY, a computation that may fail on it) would let parts of the value be inferred, so it is refused.
import type { ColumnUse, Source } from "./lineage.ts";
import type { Mask, MaskedPredicates } from "./rules.ts";

/** A use `refusedUse` found that the mode does not allow: which masked column, where. Never a value. */
export interface UseRefusal {
  /** The column as the statement reached it (a view's column keeps the view's name), or the rule's pattern. */
  column: string;
  clause: string;
  detail?: string;
  mode: Exclude<MaskedPredicates, "allow">;
}

/**
 * The first of `uses` that `mode` does not allow, given each source's mask (`maskOf`: undefined when the source is
 * not masked for this principal; a mask with `derived` when it is a value computed from a masked column), or
 * undefined when all are allowed. In whole-value mode: a lookup may test whole masked values; an equality may
 * compare whole hash-masked values with each other (or test whole values, when one side is a constant); a grouping
 * may group by whole hash-masked values; no other use may touch a masked value.
 */
export function refusedUse(
  uses: readonly ColumnUse[],
  mode: MaskedPredicates,
  maskOf: (source: Source) => Mask | undefined,
): UseRefusal | undefined {
  if (mode === "allow") return undefined;
  for (const use of uses) {
    const own = use.sources.map((source) => ({ source, mask: maskOf(source) }));
    const other = (use.other ?? []).map((source) => ({ source, mask: maskOf(source) }));
    const all = [...own, ...other];
    const masked = all.filter((s) => s.mask !== undefined);
    const first = masked[0];
    if (first === undefined) continue;
    let culprit: Sourced | undefined;
    if (mode === "refuse") culprit = first;
    else {
      switch (use.kind) {
        case "lookup":
          culprit = masked.find((s) => !whole(s));
          break;
        case "equality":
          // Against a clear column a masked one would be compared with values the principal can read.
          culprit =
            own.length === 0 || other.length === 0 ? masked.find((s) => !whole(s)) : all.find((s) => !hashed(s));
          break;
        case "group":
          culprit = masked.find((s) => !hashed(s));
          break;
        default:
          culprit = first;
      }
    }
    if (culprit === undefined) continue;
    const named = culprit.mask === undefined ? first : culprit;
    const refusal: UseRefusal = { column: columnName(named), clause: use.clause, mode };
    if (use.detail !== undefined) refusal.detail = use.detail;
    return refusal;
  }
  return undefined;
}

/** The 42501 error text for a refusal (the column and the clause, never a value). */
export function refusalMessage(refusal: UseRefusal): { message: string; hint: string } {
  const where = `${refusal.clause}${refusal.detail === undefined ? "" : ` (${refusal.detail})`}`;
  if (refusal.mode === "refuse") {
    return {
      message: `permission denied: the masked column "${refusal.column}" may not be used to filter, join, group or order rows (here: ${where})`,
      hint: "Masked values must not be inferable from which rows come back.",
    };
  }
  return {
    message: `permission denied: the masked column "${refusal.column}" may not be used in ${where}: a masked value may only be compared whole with a constant or a parameter`,
    hint:
      "Allowed: returning it (masked), and col = $1, col <> 'x', col IN (...), col = ANY($1), col IS NULL; a hash-masked " +
      "column may also be joined to another hash-masked column and grouped by. Anything else would let the value be " +
      "inferred from which rows come back, in what order, or whether the statement fails.",
  };
}

interface Sourced {
  source: Source;
  mask: Mask | undefined;
}

/** A whole masked value (not computed from one), or a source that is not masked at all. */
function whole({ source, mask }: Sourced): boolean {
  if (mask === undefined) return true;
  return mask.derived !== true && !("wholeRow" in source) && source.derived !== true;
}

/** A whole value of a hash-masked column: equality and grouping on it show no more than its hashes do. */
function hashed(sourced: Sourced): boolean {
  return sourced.mask !== undefined && sourced.mask.strategy === "hash" && whole(sourced);
}

function columnName({ source, mask }: Sourced): string {
  // The proxy's mask for a relation its catalog does not know: name what the statement named.
  if (mask?.rule === UNVERIFIABLE) return `${source.relation}.${"wholeRow" in source ? "*" : source.column}`;
  if ("wholeRow" in source) return mask?.rule ?? source.relation;
  return source.column;
}

/** The rule name the proxy gives a value of unknown provenance (a relation its catalog does not know). */
const UNVERIFIABLE = "(unverifiable)";
