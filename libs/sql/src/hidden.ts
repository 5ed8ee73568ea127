// What a statement runs behind the names it uses, as the target's catalog resolves them (TargetFacts): views and
// row-level security behind relations read, user-defined operators, casts and domain checks behind types. Each
// lookup is one Map get in the catalog; without those methods (no catalog, a catalog of functions only) nothing
// here adds anything.
import type { A_Expr, SubLink } from "libpg-query";
import { BUILTIN_OPERATORS } from "./builtins.ts";
import type { StatementClass } from "./classes.ts";
import type { Context } from "./facts.ts";
import { stringValue } from "./walk.ts";

/** A relation read, as the analysis reports it ("t", "s.t", "db.s.t"). */
export function readsRelation(name: string, cx: Context): void {
  const catalog = cx.session.catalog;
  if (catalog?.relation === undefined || cx.inert === true) return;
  const parts = name.split(".");
  // A catalog-qualified name (db.s.t) can only be the current database's.
  const key = parts.length > 2 ? parts.slice(-2).join(".") : name;
  resolved(`relation ${name}`, catalog.relation(key), cx);
}

/** The operators of an A_Expr: BETWEEN is >= and <= (and the reverse for SYMMETRIC, same names). */
export function usesExprOperator(expr: A_Expr, cx: Context): void {
  const parts = nameParts(expr.name);
  if (expr.kind?.includes("BETWEEN") === true) {
    usesOperator([">="], cx);
    usesOperator(["<="], cx);
  } else if (parts.length > 0) usesOperator(parts, cx);
}

/** A sublink compares with its operator: `= ANY (...)`, `< ALL (...)`; IN (subquery) is = ANY. */
export function usesSubLinkOperator(link: SubLink, cx: Context): void {
  const type = link.subLinkType;
  if (type !== "ANY_SUBLINK" && type !== "ALL_SUBLINK" && type !== "ROWCOMPARE_SUBLINK") return;
  const parts = nameParts(link.operName);
  usesOperator(parts.length === 0 ? ["="] : parts, cx);
}

/**
 * An operator by name as written (["==="], ["public", "==="]). A user-defined one is judged by what it runs; a
 * name that is neither user-defined nor built-in is unresolved (a write until the catalog knows it).
 */
export function usesOperator(parts: readonly string[], cx: Context): void {
  const catalog = cx.session.catalog;
  if (catalog?.operator === undefined || cx.inert === true || parts.length === 0) return;
  takesArguments(cx);
  if (parts.length === 2 && parts[0] === "pg_catalog") return;
  const name = parts.join(".");
  const classes = catalog.operator(name);
  if (classes !== undefined) {
    resolved(`operator ${name}`, classes, cx);
    return;
  }
  if (parts.length === 1 && BUILTIN_OPERATORS.has(name)) return;
  resolved(`operator ${name}`, undefined, cx);
}

/** A function call or operator: an implicit user cast into a built-in type may apply to its arguments. */
export function takesArguments(cx: Context): void {
  const classes = cx.session.catalog?.implicitCasts;
  if (classes === undefined || classes.length === 0 || cx.inert === true) return;
  resolved("implicit casts", classes, cx);
}

/** A coercion to a type named as written (a TypeCast's type, or a function-style cast's name). */
export function coercesTo(parts: readonly string[], cx: Context, mustExist: boolean): void {
  const catalog = cx.session.catalog;
  if (catalog?.type === undefined || cx.inert === true || parts.length === 0) return;
  const name = parts.join(".");
  const classes = catalog.type(name);
  if (classes !== undefined || mustExist) resolved(`type ${name}`, classes, cx);
}

/** Records what the catalog said: classes hidden behind `label`, or that it does not know it (a write). */
function resolved(label: string, classes: readonly StatementClass[] | undefined, cx: Context): void {
  const facts = cx.facts;
  if (classes === undefined) {
    facts.unresolved.add(label);
    facts.classes.add("write");
    return;
  }
  if (classes.length === 0) return;
  facts.hidden.add(label);
  for (const name of classes) facts.classes.add(name);
}

function nameParts(nodes: readonly unknown[] | undefined): string[] {
  return (nodes ?? []).map((node) => stringValue(node) ?? "");
}
