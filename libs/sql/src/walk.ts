// Walks parse trees for what a query touches: relations read and written, columns, functions, and the write
// hiding in a data-modifying CTE or a row-locking clause. Statement-level classification is in statements.ts.
import type {
  A_Expr,
  CaseExpr,
  DeleteStmt,
  FuncCall,
  InsertStmt,
  MergeStmt,
  Node,
  RangeVar,
  ReturningClause,
  SelectStmt,
  SortBy,
  SubLink,
  TypeCast,
  UpdateStmt,
  WithClause,
} from "libpg-query";
import type { Context, Scope } from "./facts.ts";
import { functionEffect } from "./functions.ts";
import {
  coercesTo,
  readsRelation,
  takesArguments,
  usesExprOperator,
  usesOperator,
  usesSubLinkOperator,
} from "./hidden.ts";
import { statement } from "./statements.ts";

type Payload = Record<string, unknown>;

/** The settings whose change escapes a read-only session or changes identity. */
export const PROTECTED_SETTINGS: ReadonlySet<string> = new Set([
  "default_transaction_read_only",
  "transaction_read_only",
  "role",
  "session_authorization",
]);

const DATA_MODIFYING = new Set(["InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"]);

/** Leaves: nodes with nothing below them that the analysis needs. */
const LEAVES = new Set([
  "A_Const",
  "A_Star",
  "BitString",
  "Boolean",
  "Float",
  "Integer",
  "ParamRef",
  "SQLValueFunction",
  "String",
  "TypeName",
]);

/** Visits any part of a parse tree: a wrapped node (`{ Tag: payload }`), an unwrapped payload, or a list. */
export function visit(value: unknown, cx: Context, scope: Scope | undefined): void {
  if (Array.isArray(value)) {
    for (const item of value) visit(item, cx, scope);
    return;
  }
  if (value === null || typeof value !== "object") return;
  const object = value as Payload;
  const tag = nodeTag(object);
  if (tag !== undefined) {
    visitNode(tag, object[tag] as Payload, cx, scope);
    return;
  }
  // Fields typed as RangeVar (relation, rel, ...) hold the payload without its tag; relname is RangeVar's alone.
  if (typeof object.relname === "string") {
    relation(object as RangeVar, cx, scope, "read");
    return;
  }
  for (const key in object) visit(object[key], cx, scope);
}

/** Visits a wrapped node, as in `{ SelectStmt: {...} }`. */
export function visitWrapped(node: Node | undefined, cx: Context, scope: Scope | undefined): void {
  if (node !== undefined) visit(node, cx, scope);
}

/** The tag of a wrapped node: its one key, which names a node type (capitalised; field names are not). */
export function nodeTag(object: object): string | undefined {
  let tag: string | undefined;
  for (const key in object) {
    if (tag !== undefined) return undefined;
    tag = key;
  }
  if (tag === undefined) return undefined;
  const first = tag.charCodeAt(0);
  return first >= 65 && first <= 90 ? tag : undefined;
}

function visitNode(tag: string, payload: Payload, cx: Context, scope: Scope | undefined): void {
  switch (tag) {
    case "RangeVar":
      relation(payload as RangeVar, cx, scope, "read");
      return;
    case "ColumnRef":
      cx.facts.columns.add(dotted(payload.fields));
      return;
    case "FuncCall":
      funcCall(payload as FuncCall, cx, scope);
      return;
    case "SelectStmt":
      select(payload as SelectStmt, cx, scope);
      return;
    case "InsertStmt":
      insert(payload as InsertStmt, cx, scope);
      return;
    case "UpdateStmt":
      update(payload as UpdateStmt, cx, scope);
      return;
    case "DeleteStmt":
      remove(payload as DeleteStmt, cx, scope);
      return;
    case "MergeStmt":
      merge(payload as MergeStmt, cx, scope);
      return;
    case "MergeWhenClause":
      assigned(payload.targetList, cx);
      visit(payload, cx, scope);
      return;
    // Operators and casts: what the target's catalog says they run (hidden.ts); then their operands.
    case "A_Expr":
      usesExprOperator(payload as A_Expr, cx);
      visit(payload, cx, scope);
      return;
    case "SubLink":
      usesSubLinkOperator(payload as SubLink, cx);
      visit(payload, cx, scope);
      return;
    case "SortBy": {
      const useOp = (payload as SortBy).useOp;
      if (useOp !== undefined)
        usesOperator(
          useOp.map((node) => stringValue(node) ?? ""),
          cx,
        );
      visit(payload, cx, scope);
      return;
    }
    case "CaseExpr":
      // CASE x WHEN v compares x = v.
      if ((payload as CaseExpr).arg !== undefined) usesOperator(["="], cx);
      visit(payload, cx, scope);
      return;
    case "TypeCast": {
      const names = (payload as TypeCast).typeName?.names;
      if (names !== undefined)
        coercesTo(
          names.map((node) => stringValue(node) ?? ""),
          cx,
          true,
        );
      visit((payload as TypeCast).arg, cx, scope);
      return;
    }
    default:
      if (LEAVES.has(tag)) return;
      // Statements inside statements: CREATE SCHEMA elements, rule actions, SQL-standard function bodies.
      if (tag.endsWith("Stmt")) statement(tag, payload, cx, scope);
      else visit(payload, cx, scope);
  }
}

/** Records a relation, named as the SQL spells it; an unqualified name of a CTE in scope is no relation. */
export function relation(
  range: RangeVar | undefined,
  cx: Context,
  scope: Scope | undefined,
  mode: "read" | "write",
): void {
  if (range?.relname === undefined) return;
  const qualified = range.schemaname !== undefined || range.catalogname !== undefined;
  if (!qualified && inScope(scope, range.relname)) return;
  const name = [range.catalogname, range.schemaname, range.relname].filter((part) => part !== undefined).join(".");
  if (mode === "write") {
    cx.facts.writes.add(name);
    return;
  }
  cx.facts.reads.add(name);
  readsRelation(name, cx);
}

function inScope(scope: Scope | undefined, name: string): boolean {
  for (let at = scope; at !== undefined; at = at.parent) if (at.names.has(name)) return true;
  return false;
}

/** Joins String nodes (and `*`) with dots, as in a ColumnRef's fields or a qualified name list. */
export function dotted(fields: unknown): string {
  if (!Array.isArray(fields)) return "";
  return fields.map((field: Payload) => ("A_Star" in field ? "*" : stringValue(field))).join(".");
}

/** The text of a String node, or undefined. */
export function stringValue(node: unknown): string | undefined {
  if (node === null || typeof node !== "object" || !("String" in node)) return undefined;
  return (node.String as { sval?: string }).sval ?? "";
}

/** Columns a statement assigns: INSERT column lists, UPDATE SET and MERGE targets (ResTarget names). */
function assigned(targets: unknown, cx: Context): void {
  if (!Array.isArray(targets)) return;
  for (const target of targets as Payload[]) {
    const name = (target.ResTarget as { name?: string } | undefined)?.name;
    if (name !== undefined) cx.facts.columns.add(name);
  }
}

/** Visits a WITH clause and returns the scope its query sees. A non-recursive CTE sees only earlier ones. */
function withClause(clause: WithClause | undefined, cx: Context, scope: Scope | undefined): Scope | undefined {
  const ctes = (clause?.ctes ?? []).map((node) => (node as { CommonTableExpr?: Payload }).CommonTableExpr ?? {});
  if (ctes.length === 0) return scope;
  const names = ctes.map((cte) => String(cte.ctename ?? ""));
  const recursive = clause?.recursive === true;
  ctes.forEach((cte, index) => {
    const query = cte.ctequery as Payload | undefined;
    const tag = query === undefined ? undefined : nodeTag(query);
    if (tag !== undefined && DATA_MODIFYING.has(tag)) cx.facts.flags.dataModifyingCte = true;
    visit(query, cx, { names: new Set(recursive ? names : names.slice(0, index)), parent: scope });
  });
  return { names: new Set(names), parent: scope };
}

function select(stmt: SelectStmt, cx: Context, scope: Scope | undefined): void {
  const inner = withClause(stmt.withClause, cx, scope);
  for (const key in stmt) {
    if (key === "withClause" || key === "intoClause" || key === "lockingClause") continue;
    if (key === "larg" || key === "rarg") select(stmt[key] ?? {}, cx, inner);
    else visit(stmt[key as keyof SelectStmt], cx, inner);
  }
  if (stmt.intoClause !== undefined) {
    cx.facts.classes.add("ddl").add("write");
    cx.facts.flags.selectInto = true;
    relation(stmt.intoClause.rel, cx, undefined, "write");
  }
  if (stmt.lockingClause !== undefined && stmt.lockingClause.length > 0) lockRows(stmt, cx, inner);
}

/** FOR UPDATE/SHARE locks rows, which a read-only transaction refuses: a write of the locked relations. */
function lockRows(stmt: SelectStmt, cx: Context, scope: Scope | undefined): void {
  cx.facts.classes.add("write");
  const from = fromRelations(stmt.fromClause ?? [], scope);
  const named = (stmt.lockingClause ?? []).map(
    (node) => (node as { LockingClause?: { lockedRels?: Node[] } }).LockingClause?.lockedRels ?? [],
  );
  let locked = from;
  if (named.every((rels) => rels.length > 0)) {
    const wanted = new Set(named.flat().map((node) => (node as { RangeVar?: RangeVar }).RangeVar?.relname));
    const matched = from.filter((item) => wanted.has(item.alias));
    // An OF name that is no plain relation here (a subquery or a CTE) locks what lies below it: lock them all.
    if (matched.length === wanted.size) locked = matched;
  }
  for (const item of locked) cx.facts.writes.add(item.name);
}

/** Relations directly in a FROM list (through joins, not subqueries), with the name a locking clause uses. */
function fromRelations(items: readonly Node[], scope: Scope | undefined): { name: string; alias: string }[] {
  const found: { name: string; alias: string }[] = [];
  const collect = (node: unknown): void => {
    const object = node as { RangeVar?: RangeVar; JoinExpr?: { larg?: Node; rarg?: Node } };
    if (object.RangeVar !== undefined) {
      const range = object.RangeVar;
      const qualified = range.schemaname !== undefined || range.catalogname !== undefined;
      if (range.relname === undefined || (!qualified && inScope(scope, range.relname))) return;
      const name = [range.catalogname, range.schemaname, range.relname].filter((part) => part !== undefined).join(".");
      found.push({ name, alias: range.alias?.aliasname ?? range.relname });
    } else if (object.JoinExpr !== undefined) {
      collect(object.JoinExpr.larg);
      collect(object.JoinExpr.rarg);
    }
  };
  for (const item of items) collect(item);
  return found;
}

// The target of INSERT/UPDATE/DELETE/MERGE is always a real relation (PostgreSQL never resolves it to a CTE), so it
// is recorded without the scope. It is also read when RETURNING hands its rows back.

function insert(stmt: InsertStmt, cx: Context, scope: Scope | undefined): void {
  const inner = withClause(stmt.withClause, cx, scope);
  cx.facts.classes.add("write");
  relation(stmt.relation, cx, undefined, "write");
  assigned(stmt.cols, cx);
  visitWrapped(stmt.selectStmt, cx, inner);
  if (stmt.onConflictClause !== undefined) {
    assigned(stmt.onConflictClause.targetList, cx);
    visit(stmt.onConflictClause, cx, inner);
  }
  returning(stmt.returningClause, stmt.relation, cx, inner);
}

function update(stmt: UpdateStmt, cx: Context, scope: Scope | undefined): void {
  const inner = withClause(stmt.withClause, cx, scope);
  cx.facts.classes.add("write");
  relation(stmt.relation, cx, undefined, "write");
  assigned(stmt.targetList, cx);
  visit(stmt.targetList, cx, inner);
  visit(stmt.fromClause, cx, inner);
  visitWrapped(stmt.whereClause, cx, inner);
  returning(stmt.returningClause, stmt.relation, cx, inner);
}

function remove(stmt: DeleteStmt, cx: Context, scope: Scope | undefined): void {
  const inner = withClause(stmt.withClause, cx, scope);
  cx.facts.classes.add("write");
  relation(stmt.relation, cx, undefined, "write");
  visit(stmt.usingClause, cx, inner);
  visitWrapped(stmt.whereClause, cx, inner);
  returning(stmt.returningClause, stmt.relation, cx, inner);
}

function merge(stmt: MergeStmt, cx: Context, scope: Scope | undefined): void {
  const inner = withClause(stmt.withClause, cx, scope);
  cx.facts.classes.add("write");
  relation(stmt.relation, cx, undefined, "write");
  visitWrapped(stmt.sourceRelation, cx, inner);
  visitWrapped(stmt.joinCondition, cx, inner);
  visit(stmt.mergeWhenClauses, cx, inner);
  returning(stmt.returningClause, stmt.relation, cx, inner);
}

function returning(
  clause: ReturningClause | undefined,
  target: RangeVar | undefined,
  cx: Context,
  scope: Scope | undefined,
): void {
  if (clause?.exprs === undefined || clause.exprs.length === 0) return;
  relation(target, cx, undefined, "read");
  visit(clause.exprs, cx, scope);
}

/** Records a function call and what calling it does. */
function funcCall(call: FuncCall, cx: Context, scope: Scope | undefined): void {
  const parts = (call.funcname ?? []).map((node) => stringValue(node) ?? "");
  // Functions spelled as SQL syntax (EXTRACT, TRIM, POSITION) come back as pg_catalog.<name>; show what was written.
  const shown = call.funcformat === "COERCE_SQL_SYNTAX" && parts[0] === "pg_catalog" ? parts.slice(1) : parts;
  const name = shown.join(".").toLowerCase();
  const facts = cx.facts;
  facts.functions.add(name);
  // `date(x)` may be no function but a cast to date (PostgreSQL tries that when no function fits): what it runs.
  coercesTo(shown, cx, false);
  if (call.args !== undefined && call.args.length > 0) takesArguments(cx);
  switch (functionEffect(parts, name, cx.session.catalog)) {
    case "read":
      break;
    case "write":
      facts.classes.add("write");
      break;
    case "session":
      facts.classes.add("session");
      break;
    case "admin":
      facts.classes.add("admin");
      break;
    case "dynamic":
      facts.classes.add("procedural").add("write");
      facts.flags.dynamicSql = true;
      break;
    case "set_config":
      setConfig(call, cx);
      break;
    case "unknown":
      facts.classes.add("write");
      facts.unknownFunctions.add(name);
      break;
  }
  visit(call.args, cx, scope);
  visit(call.agg_order, cx, scope);
  visitWrapped(call.agg_filter, cx, scope);
  visit(call.over, cx, scope);
}

/** set_config(name, value, is_local) is SET by another name; a name that is no constant may be any setting. */
function setConfig(call: FuncCall, cx: Context): void {
  const first = call.args?.[0] as { A_Const?: { sval?: { sval?: string } } } | undefined;
  const constant = first?.A_Const?.sval?.sval;
  cx.facts.classes.add("session");
  changesSetting(constant === undefined ? "*" : constant.toLowerCase(), cx);
}

/** A setting changes: a privilege matter when it is protected, "all" of them, or unknown ("*"). */
export function changesSetting(name: string, cx: Context): void {
  if (name === "*" || name === "all" || PROTECTED_SETTINGS.has(name)) {
    cx.facts.classes.add("privilege");
    cx.facts.protectedSettings.add(name);
  }
}
