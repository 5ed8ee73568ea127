// Output lineage: for each column a statement returns, the source columns its value derives from, read off
// PostgreSQL's own parse tree (libpg-query). The proxy masks a computed column when any of its sources is masked;
// plain column references it labels from RowDescription (table OID + column number) instead. Lineage follows
// values, not influence: a column that only filters (WHERE, JOIN ON, HAVING), orders (ORDER BY, a window's ORDER
// BY) or groups rows is no source of the output. Ambiguity resolves towards more sources, never fewer.
//
// The same walk records every *use* of a column that is not returning it: comparisons, conditions, orderings,
// groupings, row counts (LIMIT, set-returning functions), and computations that could fail on some values (an error
// tells something about the value). The proxy refuses a statement whose uses would reveal part of a masked value
// (see ColumnUse and predicates.ts).
import { analyze, initSqlAnalysis, SqlAnalysisError } from "@agentgate/sql";
import type {
  Alias,
  ColumnRef,
  CommonTableExpr,
  DeleteStmt,
  FuncCall,
  InsertStmt,
  MergeStmt,
  Node,
  RangeFunction,
  RangeSubselect,
  RangeVar,
  ResTarget,
  ReturningClause,
  SelectStmt,
  UpdateStmt,
  WithClause,
} from "libpg-query";
import { hasSqlDetails, parseSync } from "libpg-query";
import { MaskingError } from "./errors.ts";

/**
 * A column of a relation, named as the SQL wrote the relation ("customers", "public.customers"). `derived` when the
 * value is computed from the column (a function, a cast, an operator...), not the column's value as it is: a derived
 * value is never partially shown nor hashed (a window or a hash of a part would give the part away).
 */
export interface ColumnSource {
  relation: string;
  column: string;
  derived?: true;
}

/** The whole row of a relation (`t`, `t.*`, `row_to_json(t)`): every column of it is a source (always derived). */
export interface WholeRowSource {
  relation: string;
  wholeRow: true;
}

export type Source = ColumnSource | WholeRowSource;

/** One output column. `sources` is empty for a value derived from no relation (a constant, a parameter). */
export interface ColumnLineage {
  kind: "column";
  /** The column's name as PostgreSQL names it (best effort for unnamed expressions: "?column?"). */
  name: string;
  sources: Source[];
}

/**
 * Every column of a relation, in order, each a plain reference to itself: `*` or `t.*` over a table or view that
 * `columnsOf` could not list. The proxy expands it with the catalog (dropped columns skipped); `except` lists
 * columns a JOIN ... USING moved to the front.
 */
export interface StarLineage {
  kind: "star";
  relation: string;
  except?: string[];
}

/**
 * A run of output columns whose number the parse tree does not tell (a set-returning function of unknown shape, a
 * NATURAL JOIN of unlisted relations, `(composite).*`): each of them derives from some of `sources`.
 */
export interface ColumnsLineage {
  kind: "columns";
  sources: Source[];
}

export type Lineage = ColumnLineage | StarLineage | ColumnsLineage;

/**
 * The lineage of a statement's output columns, or "opaque" when a value it returns comes out of something the
 * analysis cannot see into (a function that may read tables, an unknown prepared statement or cursor): the proxy
 * then refuses the statement or masks every column.
 */
export type OutputLineage = Lineage[] | "opaque";

/**
 * How a statement uses a value other than by returning it:
 * - lookup: compared whole with constants or parameters (`= $1`, `<>`, `IN (...)`, `= ANY($1)`, `IS NULL`, a
 *   boolean column as a condition, `count(col)`);
 * - equality: compared for equality with another column's value (`a.x = b.y`, `JOIN ... USING`, `IN (SELECT ...)`);
 * - group: rows grouped or de-duplicated by it (GROUP BY, DISTINCT, PARTITION BY, `count(DISTINCT x)`, UNION);
 * - other: anything else (ordered by, compared by range or pattern, a condition computed from it, a LIMIT, the
 *   argument of a set-returning function or of a computation that may fail on some values).
 * A use of a derived source (`substr(col, 1, 1) = 'x'`) tells about a part of the value, whatever its kind.
 */
export type UseKind = "lookup" | "equality" | "group" | "other";

export interface ColumnUse {
  kind: UseKind;
  /** Where, for the refusal: "WHERE", "JOIN ... ON", "ORDER BY", "the select list"... */
  clause: string;
  /** What, when the clause alone does not say: "operator ~~", "cast to int4", "function pg_sleep()". */
  detail?: string;
  sources: Source[];
  /** equality: the other side. */
  other?: Source[];
}

/**
 * What the proxy needs of one statement: the lineage of its output and its uses of values, or "incomplete" when the
 * walk could not see the whole statement (the proxy then judges by column names alone).
 */
export interface StatementAnalysis {
  lineage: OutputLineage;
  uses: ColumnUse[] | "incomplete";
}

export interface LineageOptions {
  /**
   * True for a function whose result may carry data the analysis cannot follow. `name` is lower-cased and dotted as
   * written ("f", "app.f"); `parts` keeps the parser's spelling. Default: everything except PostgreSQL's read-only
   * built-ins (the @agentgate/sql list), and of those the ones that read data from outside the parse tree (large
   * objects, cursors, server files).
   */
  isOpaqueFunction?: (name: string, parts: readonly string[]) => boolean;
  /**
   * Column names of a table or view named as written ("t", "s.t"), in order, from the catalog; undefined when
   * unknown. With it, `*` is expanded here and unqualified names are resolved to the one relation that has them.
   */
  columnsOf?: (relation: string) => readonly string[] | undefined;
  /** Statements PREPAREd in this session, by name (the body or the whole PREPARE), for EXECUTE. */
  prepared?: ReadonlyMap<string, string>;
  /** Lineage of this session's open cursors, by name (from their DECLARE), for FETCH. */
  cursors?: ReadonlyMap<string, OutputLineage>;
}

/** Loads PostgreSQL's parser; outputLineage() may be called once this resolves. */
export function initLineage(): Promise<void> {
  return initSqlAnalysis();
}

/**
 * The lineage of the one statement in `sql` (see statementLineages for several). For a statement that returns no
 * rows, []; for DECLARE CURSOR and PREPARE, the lineage of the rows FETCH and EXECUTE will return; for COPY ... TO,
 * that of the rows copied. Throws MaskingError (unparsable_sql) for SQL the parser rejects.
 */
export function outputLineage(sql: string, options: LineageOptions = {}): OutputLineage {
  const all = statementLineages(sql, options);
  if (all.length > 1) {
    throw new MaskingError("not_one_statement", `expected one statement, got ${all.length}: use statementLineages()`);
  }
  return all[0] ?? [];
}

/** outputLineage for each statement of a multi-statement string, in order. */
export function statementLineages(sql: string, options: LineageOptions = {}): OutputLineage[] {
  return parse(sql).map((stmt) => lineageOfStatement(stmt, options));
}

/** The lineage of one statement of a parse tree (statementLineages parses the text first). */
export function lineageOfStatement(stmt: Node, options: LineageOptions = {}): OutputLineage {
  return analyzeStatement(stmt, options).lineage;
}

/** The lineage of one statement and its uses of values (see ColumnUse). */
export function analyzeStatement(stmt: Node, options: LineageOptions = {}): StatementAnalysis {
  const cx: Cx = {
    isOpaque: options.isOpaqueFunction ?? defaultIsOpaqueFunction,
    columnsOf: options.columnsOf ?? (() => undefined),
    options,
    uses: [],
    clause: "the statement",
    incomplete: false,
  };
  try {
    const lineage = publish(statementColumns(stmt, cx, true));
    return { lineage, uses: cx.incomplete ? "incomplete" : publishUses(cx.uses) };
  } catch (error) {
    // Too deep to follow, or something seen that nothing can be said about: the proxy treats it as opaque.
    if (error === OPAQUE || error instanceof RangeError) return { lineage: "opaque", uses: "incomplete" };
    throw error;
  }
}

function publishUses(uses: readonly Use[]): ColumnUse[] {
  const out: ColumnUse[] = [];
  for (const use of uses) {
    const published: ColumnUse = { kind: use.kind, clause: use.clause, sources: concrete(use.sources) };
    if (use.detail !== undefined) published.detail = use.detail;
    if (use.other !== undefined) published.other = concrete(use.other);
    if (published.sources.length > 0 || (published.other?.length ?? 0) > 0) out.push(published);
  }
  return out;
}

/** Sources without the opaque markers (an opaque function in a predicate is judged by its arguments). */
function concrete(sources: readonly Src[]): Source[] {
  const out: Source[] = [];
  for (const source of unique(sources)) if (!("opaque" in source)) out.push(source);
  return out.sort(compareSources);
}

function parse(sql: string): Node[] {
  if (sql === "") return [];
  try {
    return (parseSync(sql).stmts ?? []).flatMap((raw) => (raw.stmt === undefined ? [] : [raw.stmt]));
  } catch (error) {
    // Not a parse error (the parser not loaded yet): a programming error, not the statement's fault.
    if (!hasSqlDetails(error) && !(error instanceof RangeError)) throw error;
    const message = error instanceof Error ? error.message : String(error);
    throw new MaskingError("unparsable_sql", `cannot parse statement: ${message}`, { cause: error });
  }
}

// --- what is tracked --------------------------------------------------------------------------------------------

/** A source, or the name of an opaque function whose result flows into the column. */
type Src = Source | { opaque: string };

type Col =
  | { kind: "column"; name: string; sources: Src[] }
  | { kind: "star"; relation: string; except: string[] }
  | { kind: "columns"; sources: Src[] };

/** The columns of a FROM item, a subquery or a CTE, as far as they are known. */
interface Shape {
  columns: Col[];
  /** Set for a table or view: a whole-row reference to it is `{ relation, wholeRow }`. */
  relation?: string;
  /** Names from an alias list that could not be matched to positions: each derives from these sources. */
  aliases?: ReadonlyMap<string, Src[]>;
  /** Any name may be a column of this item (a function of unknown shape), derived from these sources. */
  anyName?: Src[];
}

/** A name visible in a FROM clause. */
interface Item {
  /** The alias, else the relation's (or function's) own name. */
  name: string | undefined;
  /** "s.t" for an unaliased schema-qualified relation, which `s.t.c` may reference. */
  qualified: string | undefined;
  shape: Shape;
}

/** One query level: its FROM items, its FROM entries in order (for `*`), and the enclosing level. */
interface Scope {
  items: Item[];
  from: Shape[];
  parent: Scope | undefined;
}

interface Cte {
  node: CommonTableExpr;
  /** The CTEs its body sees. */
  env: CteEnv | undefined;
  /** The query level around the WITH clause (a CTE may reference its columns). */
  outer: Scope | undefined;
  shape: Shape | undefined;
}

interface CteEnv {
  entries: ReadonlyMap<string, Cte>;
  parent: CteEnv | undefined;
}

interface Cx {
  isOpaque: (name: string, parts: readonly string[]) => boolean;
  columnsOf: (relation: string) => readonly string[] | undefined;
  options: LineageOptions;
  /** Uses of values seen so far (see ColumnUse). */
  uses: Use[];
  /** The clause being walked, for the uses found in it. */
  clause: string;
  /** Set when part of the statement could not be walked: its uses are not all known. */
  incomplete: boolean;
}

interface Use {
  kind: UseKind;
  clause: string;
  detail?: string;
  sources: Src[];
  other?: Src[];
}

/** Thrown when nothing can be said: the statement is opaque. */
const OPAQUE = Symbol("opaque");

type Payload = Record<string, unknown>;

// --- statements -------------------------------------------------------------------------------------------------

function statementColumns(stmt: Node, cx: Cx, top: boolean): Col[] | "opaque" {
  const tag = nodeTag(stmt);
  const payload = (stmt as Payload)[tag ?? ""] as Payload;
  switch (tag) {
    case "SelectStmt": {
      // SELECT ... INTO sends no rows to the client (its uses still count: the rows it stores can be read back).
      const columns = selectColumns(payload as SelectStmt, undefined, undefined, cx);
      return (payload as SelectStmt).intoClause === undefined ? columns : [];
    }
    case "ExplainStmt":
    case "CreateTableAsStmt":
    case "ViewStmt":
      // No table data comes back, but EXPLAIN ANALYZE counts rows, and a table or view made here can be read back:
      // what the query filters, orders or groups on is used all the same. (A view already in the catalog is the
      // administrator's: its own WHERE is not the agent's use.)
      if (payload.query !== undefined) {
        const columns = statementColumns(payload.query as Node, cx, false);
        if (columns === "opaque") cx.incomplete = true;
        else if (tag === "ViewStmt" && temporary(payload.view as RangeVar | undefined)) {
          // A temporary view is out of the catalog's sight (another session's): what is read through it later
          // could not be traced to the masked columns it shows.
          use(cx, "other", allSources(columns), undefined, "a temporary view");
        }
      }
      return [];
    case "InsertStmt":
    case "UpdateStmt":
    case "DeleteStmt":
    case "MergeStmt":
      return returningColumns(tag, payload, undefined, undefined, cx);
    case "CopyStmt":
      return copyColumns(payload, cx);
    case "DeclareCursorStmt":
    case "PrepareStmt":
      return payload.query === undefined ? [] : statementColumns(payload.query as Node, cx, false);
    case "ExecuteStmt":
      return top ? executeColumns(String(payload.name ?? ""), cx) : "opaque";
    case "FetchStmt": {
      if (payload.ismove === true) return [];
      const lineage = cx.options.cursors?.get(String(payload.portalname ?? ""));
      if (lineage === undefined || lineage === "opaque") return "opaque";
      return lineage.map(privateCol);
    }
    case "CallStmt": {
      // A procedure's OUT parameters come back as a row.
      const call = payload.funccall as FuncCall | undefined;
      const sources: Src[] = [];
      if (call !== undefined) exprSources({ FuncCall: call }, emptyScope(), undefined, cx, sources);
      return [{ kind: "column", name: "?column?", sources: derived(sources) }];
    }
    default:
      // Utility statements (SHOW, EXPLAIN, DDL, ...) return no table data.
      return [];
  }
}

function copyColumns(copy: Payload, cx: Cx): Col[] {
  if (copy.is_from === true) return [];
  if (copy.query !== undefined) {
    const columns = statementColumns(copy.query as Node, cx, false);
    if (columns === "opaque") throw OPAQUE;
    return columns;
  }
  const range = copy.relation as RangeVar | undefined;
  if (range === undefined) return [];
  const relation = relationName(range);
  const attlist = names(copy.attlist as Node[] | undefined);
  if (attlist.length > 0) return attlist.map((column) => col(column, [{ relation, column }]));
  return baseShape(relation, cx).columns;
}

function executeColumns(name: string, cx: Cx): Col[] | "opaque" {
  const text = cx.options.prepared?.get(name);
  if (text === undefined) return "opaque";
  let stmts: Node[];
  try {
    stmts = parse(text);
  } catch {
    return "opaque";
  }
  if (stmts.length !== 1) return "opaque";
  // No EXECUTE inside: a prepared text that says EXECUTE is opaque rather than followed (it could loop).
  return statementColumns(stmts[0]!, cx, false);
}

/** The lineage as published: sorted, deduplicated sources; "opaque" when an opaque function reaches the output. */
function publish(columns: Col[] | "opaque"): OutputLineage {
  if (columns === "opaque") return "opaque";
  const out: Lineage[] = [];
  for (const column of columns) {
    if (column.kind === "star") {
      out.push(
        column.except.length === 0
          ? { kind: "star", relation: column.relation }
          : { kind: "star", relation: column.relation, except: [...new Set(column.except)] },
      );
      continue;
    }
    const sources: Source[] = [];
    for (const source of unique(column.sources)) {
      if ("opaque" in source) return "opaque";
      sources.push(source);
    }
    sources.sort(compareSources);
    out.push(column.kind === "column" ? { kind: "column", name: column.name, sources } : { kind: "columns", sources });
  }
  return out;
}

function privateCol(lineage: Lineage): Col {
  if (lineage.kind === "star") return { kind: "star", relation: lineage.relation, except: lineage.except ?? [] };
  return lineage.kind === "column"
    ? { kind: "column", name: lineage.name, sources: lineage.sources }
    : { kind: "columns", sources: lineage.sources };
}

// --- SELECT -----------------------------------------------------------------------------------------------------

function selectColumns(stmt: SelectStmt, parent: Scope | undefined, env: CteEnv | undefined, cx: Cx): Col[] {
  const inner = withClause(stmt.withClause, env, parent, cx);
  let columns: Col[];
  let scope: Scope;
  if (stmt.op !== undefined && stmt.op !== "SETOP_NONE") {
    const left = selectColumns(stmt.larg ?? {}, parent, inner, cx);
    const right = selectColumns(stmt.rarg ?? {}, parent, inner, cx);
    columns = setOperation(left, right);
    // UNION de-duplicates, INTERSECT and EXCEPT compare: rows are matched by their values.
    if (!(stmt.op === "SETOP_UNION" && stmt.all === true)) setOperationUses(stmt.op, left, right, cx);
    // ORDER BY and LIMIT of a set operation see its output columns.
    scope = { items: [{ name: undefined, qualified: undefined, shape: { columns } }], from: [], parent };
  } else if (stmt.valuesLists !== undefined && stmt.valuesLists.length > 0) {
    columns = valuesColumns(stmt.valuesLists, parent, inner, cx);
    scope = { items: [], from: [], parent };
  } else {
    scope = inClause(cx, "FROM", () => fromClause(stmt.fromClause ?? [], parent, inner, cx));
    columns = inClause(cx, "the select list", () => targetList(stmt.targetList ?? [], scope, inner, cx));
    selectUses(stmt, scope, inner, cx, columns);
  }
  orderAndLimitUses(stmt, scope, inner, cx, columns);
  finishCtes(inner, env, cx);
  return columns;
}

/** UNION, INTERSECT, EXCEPT: each output column derives from that position on both sides. */
function setOperation(left: Col[], right: Col[]): Col[] {
  const known = (cols: Col[]) => cols.every((c) => c.kind === "column");
  const named = (c: Col) => (c.kind === "column" ? c.name : "?column?");
  if (known(left) && known(right) && left.length === right.length) {
    return left.map((c, i) => col(named(c), [...colSources(c), ...colSources(right[i]!)]));
  }
  // One side has a run of unknown width: positions follow the other side, each taking all of the unknown one.
  if (known(left)) return left.map((c) => col(named(c), [...colSources(c), ...allSources(right)]));
  if (known(right)) return right.map((c) => col(named(c), [...colSources(c), ...allSources(left)]));
  return [{ kind: "columns", sources: unique([...allSources(left), ...allSources(right)]) }];
}

function valuesColumns(lists: Node[], parent: Scope | undefined, env: CteEnv | undefined, cx: Cx): Col[] {
  const columns: Src[][] = [];
  const scope: Scope = { items: [], from: [], parent };
  for (const list of lists) {
    const items = ((list as { List?: { items?: Node[] } }).List?.items ?? []) as Node[];
    items.forEach((item, i) => {
      columns[i] ??= [];
      columns[i]!.push(...inClause(cx, "VALUES", () => operand(item, scope, env, cx)));
    });
  }
  return columns.map((sources, i) => col(`column${i + 1}`, sources));
}

function targetList(targets: readonly Node[], scope: Scope, env: CteEnv | undefined, cx: Cx): Col[] {
  const out: Col[] = [];
  for (const target of targets) {
    const res = (target as { ResTarget?: ResTarget }).ResTarget;
    if (res?.val === undefined) continue;
    const val = res.val as Payload;
    const ref = val.ColumnRef as ColumnRef | undefined;
    const fields = ref?.fields ?? [];
    if (ref !== undefined && isStar(fields[fields.length - 1])) {
      out.push(
        ...starColumns(
          fields.slice(0, -1).map((field) => stringOf(field) ?? ""),
          scope,
        ),
      );
      continue;
    }
    const indirection = val.A_Indirection as { arg?: Node; indirection?: Node[] } | undefined;
    if (indirection !== undefined && isStar(indirection.indirection?.[indirection.indirection.length - 1])) {
      // (composite).*: one column per field, how many the parse tree does not say.
      const sources: Src[] = [];
      exprSources(indirection.arg, scope, env, cx, sources);
      out.push({ kind: "columns", sources: derived(sources) });
      continue;
    }
    out.push(col(res.name ?? figureName(res.val), operand(res.val, scope, env, cx)));
  }
  return out;
}

/** `*` (every FROM entry in order) or `t.*`. */
function starColumns(qualifier: string[], scope: Scope): Col[] {
  if (qualifier.length === 0) return scope.from.flatMap((shape) => shape.columns);
  return findItem(scope, qualifier)?.shape.columns ?? [];
}

// --- FROM -------------------------------------------------------------------------------------------------------

function fromClause(nodes: readonly Node[], parent: Scope | undefined, env: CteEnv | undefined, cx: Cx): Scope {
  const scope: Scope = { items: [], from: [], parent };
  for (const node of nodes) {
    const entry = fromItem(node, scope, env, cx);
    scope.from.push(entry.shape);
    scope.items.push(...entry.items);
  }
  return scope;
}

/**
 * One FROM entry. `level` holds the entries before it: LATERAL subqueries and functions see them, other subqueries
 * see only the enclosing query (`level.parent`).
 */
function fromItem(node: Node, level: Scope, env: CteEnv | undefined, cx: Cx): { shape: Shape; items: Item[] } {
  const tag = nodeTag(node);
  const payload = (node as Payload)[tag ?? ""] as Payload;
  switch (tag) {
    case "RangeVar":
      return rangeVar(payload as RangeVar, env, cx);
    case "RangeSubselect": {
      const sub = payload as RangeSubselect;
      const query = (sub.subquery as { SelectStmt?: SelectStmt } | undefined)?.SelectStmt ?? {};
      const shape = applyAlias(
        { columns: selectColumns(query, sub.lateral === true ? level : level.parent, env, cx) },
        sub.alias,
      );
      return { shape, items: [{ name: sub.alias?.aliasname, qualified: undefined, shape }] };
    }
    case "RangeFunction":
      return rangeFunction(payload as RangeFunction, level, env, cx);
    case "JoinExpr":
      return join(payload, level, env, cx);
    case "RangeTableSample":
      return fromItem(payload.relation as Node, level, env, cx);
    case "RangeTableFunc":
    case "JsonTable":
      return tableFunction(payload, level, env, cx);
    default:
      throw OPAQUE;
  }
}

function rangeVar(range: RangeVar, env: CteEnv | undefined, cx: Cx): { shape: Shape; items: Item[] } {
  const name = relationName(range);
  const qualified = range.schemaname !== undefined || range.catalogname !== undefined;
  const cte = qualified ? undefined : findCte(env, range.relname ?? "");
  const shape = applyAlias(cte === undefined ? baseShape(name, cx) : cteShape(cte, cx), range.alias);
  const alias = range.alias?.aliasname;
  return {
    shape,
    items: [{ name: alias ?? range.relname, qualified: alias === undefined && qualified ? name : undefined, shape }],
  };
}

/** A table or view: its columns from the catalog when it lists them, else a star the proxy expands. */
function baseShape(relation: string, cx: Cx): Shape {
  const columns = cx.columnsOf(relation);
  if (columns === undefined) return { columns: [{ kind: "star", relation, except: [] }], relation };
  return { columns: columns.map((column) => col(column, [{ relation, column }])), relation };
}

function join(payload: Payload, level: Scope, env: CteEnv | undefined, cx: Cx): { shape: Shape; items: Item[] } {
  const left = fromItem(payload.larg as Node, level, env, cx);
  // The right side of a join may be LATERAL and see the left side's names.
  const right = fromItem(
    payload.rarg as Node,
    { items: [...level.items, ...left.items], from: [], parent: level.parent },
    env,
    cx,
  );
  const using = names(payload.usingClause as Node[] | undefined);
  joinUses(payload, left, right, level, using, env, cx);
  const shape = joinShape(left.shape, right.shape, using, payload.isNatural === true);
  const alias = payload.alias as Alias | undefined;
  if (alias?.aliasname !== undefined) {
    // An alias hides the names inside the join.
    const aliased = applyAlias(shape, alias);
    return { shape: aliased, items: [{ name: alias.aliasname, qualified: undefined, shape: aliased }] };
  }
  const items = [...left.items, ...right.items];
  const usingAlias = (payload.join_using_alias as Alias | undefined)?.aliasname;
  if (usingAlias !== undefined) {
    const merged = { columns: shape.columns.slice(0, using.length) };
    items.push({ name: usingAlias, qualified: undefined, shape: merged });
  }
  return { shape, items };
}

function joinShape(left: Shape, right: Shape, using: string[], natural: boolean): Shape {
  const extra: Omit<Shape, "columns"> = {};
  const aliases = new Map([...(left.aliases ?? []), ...(right.aliases ?? [])]);
  if (aliases.size > 0) extra.aliases = aliases;
  const anyName = [...(left.anyName ?? []), ...(right.anyName ?? [])];
  if (anyName.length > 0) extra.anyName = anyName;
  let merged = using;
  if (natural) {
    if (!fullyKnown(left) || !fullyKnown(right)) {
      // Which columns the two sides share is the catalog's to say: a run of unknown width over both sides.
      return { ...extra, columns: [{ kind: "columns", sources: unique([...wholeRow(left), ...wholeRow(right)]) }] };
    }
    const rightNames = new Set(right.columns.map((c) => (c.kind === "column" ? c.name : "")));
    merged = left.columns.flatMap((c) => (c.kind === "column" && rightNames.has(c.name) ? [c.name] : []));
  }
  if (merged.length === 0) return { ...extra, columns: [...left.columns, ...right.columns] };
  const first = merged.map((name) => col(name, [...lookup(left, name).sources, ...lookup(right, name).sources]));
  return { ...extra, columns: [...first, ...without(left.columns, merged), ...without(right.columns, merged)] };
}

function without(columns: Col[], names: string[]): Col[] {
  return columns.flatMap((c): Col[] => {
    if (c.kind === "column") return names.includes(c.name) ? [] : [c];
    if (c.kind === "star") return [{ ...c, except: [...c.except, ...names] }];
    return [c];
  });
}

/** Output column names of built-in set-returning functions whose shape is fixed. */
const FUNCTION_COLUMNS: Readonly<Record<string, readonly string[]>> = {
  json_each: ["key", "value"],
  json_each_text: ["key", "value"],
  jsonb_each: ["key", "value"],
  jsonb_each_text: ["key", "value"],
};
const SINGLE_COLUMN_FUNCTIONS = new Set([
  "generate_series",
  "generate_subscripts",
  "regexp_split_to_table",
  "regexp_matches",
  "string_to_table",
  "json_array_elements",
  "json_array_elements_text",
  "jsonb_array_elements",
  "jsonb_array_elements_text",
  "json_object_keys",
  "jsonb_object_keys",
  "jsonb_path_query",
]);

function rangeFunction(
  range: RangeFunction,
  level: Scope,
  env: CteEnv | undefined,
  cx: Cx,
): { shape: Shape; items: Item[] } {
  const functions = (range.functions ?? []).map(
    (node) => ((node as { List?: { items?: Node[] } }).List?.items ?? []) as Node[],
  );
  const columns: Col[] = [];
  const anyName: Src[] = [];
  let firstName: string | undefined;
  // A function returning a scalar names its one column after the alias (`generate_series(1, 3) AS g`).
  let scalar = false;
  for (const [call, definitions] of functions) {
    const sources: Src[] = [];
    inClause(cx, "a function in FROM", () => exprSources(call, level, env, cx, sources));
    // How many rows a function in FROM returns depends on its arguments.
    use(cx, "other", sources, undefined, "a function in FROM");
    const parts = funcParts((call as { FuncCall?: FuncCall } | undefined)?.FuncCall);
    const last = parts[parts.length - 1] ?? "";
    firstName ??= last;
    const builtin = parts.length === 1 || (parts.length === 2 && parts[0] === "pg_catalog");
    const argc = (call as { FuncCall?: FuncCall } | undefined)?.FuncCall?.args?.length ?? 0;
    const defined =
      columnDefinitions((definitions as { List?: { items?: Node[] } } | undefined)?.List?.items) ??
      (functions.length === 1 ? columnDefinitions(range.coldeflist) : undefined);
    scalar =
      functions.length === 1 &&
      defined === undefined &&
      builtin &&
      (SINGLE_COLUMN_FUNCTIONS.has(last) || (last === "unnest" && argc === 1));
    const known = defined ?? (builtin ? FUNCTION_COLUMNS[last] : undefined) ?? (scalar ? [last] : undefined);
    const values = derived(sources);
    if (known === undefined) {
      columns.push({ kind: "columns", sources: values });
      anyName.push(...values);
    } else columns.push(...known.map((name) => col(name, values)));
  }
  const alias = range.alias?.aliasname;
  const only = columns[0];
  if (scalar && alias !== undefined && only?.kind === "column" && range.alias?.colnames === undefined) {
    columns[0] = col(alias, only.sources);
  }
  if (range.ordinality === true) columns.push(col("ordinality", []));
  const base: Shape = anyName.length > 0 ? { columns, anyName: unique(anyName) } : { columns };
  const shape = applyAlias(base, range.alias);
  return { shape, items: [{ name: alias ?? firstName, qualified: undefined, shape }] };
}

function columnDefinitions(nodes: readonly Node[] | undefined): string[] | undefined {
  if (nodes === undefined || nodes.length === 0) return undefined;
  return nodes.map((node) => String((node as { ColumnDef?: { colname?: string } }).ColumnDef?.colname ?? "?column?"));
}

/** XMLTABLE and JSON_TABLE: named columns, each derived from the document and the expressions given. */
function tableFunction(
  payload: Payload,
  level: Scope,
  env: CteEnv | undefined,
  cx: Cx,
): { shape: Shape; items: Item[] } {
  const sources: Src[] = [];
  const names: string[] = [];
  const collect = (columns: unknown) => {
    for (const node of (columns ?? []) as Payload[]) {
      const column = (node.RangeTableFuncCol ?? node.JsonTableColumn) as Payload | undefined;
      if (column === undefined) continue;
      if (column.coltype === "JTC_NESTED") collect(column.columns);
      else if (typeof column.colname === "string" || typeof column.name === "string") {
        names.push(String(column.colname ?? column.name));
      }
    }
  };
  collect(payload.columns);
  inClause(cx, "a table function in FROM", () => {
    for (const key in payload) if (key !== "alias") exprSources(payload[key], level, env, cx, sources);
  });
  use(cx, "other", sources, undefined, "a table function in FROM");
  const values = derived(sources);
  const shape = applyAlias({ columns: names.map((name) => col(name, values)) }, payload.alias as Alias | undefined);
  return { shape, items: [{ name: (payload.alias as Alias | undefined)?.aliasname, qualified: undefined, shape }] };
}

/** Renames the first columns after an alias list (`AS x(a, b)`). */
function applyAlias(shape: Shape, alias: Alias | undefined): Shape {
  const given = names(alias?.colnames);
  if (given.length === 0) return shape;
  const columns: Col[] = [];
  let next = 0;
  let blocked = false;
  for (const c of shape.columns) {
    if (next < given.length && !blocked && c.kind === "column") columns.push(col(given[next++]!, c.sources));
    else {
      if (c.kind !== "column") blocked = true;
      columns.push(c);
    }
  }
  if (next === given.length) return { ...shape, columns };
  // Past a run of unknown width the positions are unknown: each remaining name may be any of the rest.
  const rest = wholeRow({
    columns: shape.columns.slice(next),
    ...(shape.relation === undefined ? {} : { relation: shape.relation }),
  });
  const aliases = new Map(shape.aliases ?? []);
  for (const name of given.slice(next)) aliases.set(name, rest);
  return { ...shape, columns, aliases };
}

// --- WITH -------------------------------------------------------------------------------------------------------

function withClause(
  clause: WithClause | undefined,
  env: CteEnv | undefined,
  outer: Scope | undefined,
  cx: Cx,
): CteEnv | undefined {
  const nodes = (clause?.ctes ?? []).map(
    (node) => (node as { CommonTableExpr?: CommonTableExpr }).CommonTableExpr ?? {},
  );
  if (nodes.length === 0) return env;
  if (clause?.recursive !== true) {
    // Each CTE sees the ones before it; computed when first referenced.
    let current = env;
    for (const node of nodes) {
      const cte: Cte = { node, env: current, outer, shape: undefined };
      current = { entries: new Map([[node.ctename ?? "", cte]]), parent: current };
    }
    return current;
  }
  // WITH RECURSIVE: every CTE sees all of them. Sources only grow from round to round, so this settles.
  const entries = new Map<string, Cte>();
  const recursive: CteEnv = { entries, parent: env };
  for (const node of nodes) entries.set(node.ctename ?? "", { node, env: recursive, outer, shape: { columns: [] } });
  for (let round = 0; round < 20; round++) {
    let changed = false;
    for (const cte of entries.values()) {
      const shape = computeCte(cte, cx);
      if (shapeKey(shape) !== shapeKey(cte.shape!)) changed = true;
      cte.shape = shape;
    }
    if (!changed) return recursive;
  }
  throw OPAQUE;
}

function findCte(env: CteEnv | undefined, name: string): Cte | undefined {
  for (let at = env; at !== undefined; at = at.parent) {
    const cte = at.entries.get(name);
    if (cte !== undefined) return cte;
  }
  return undefined;
}

function cteShape(cte: Cte, cx: Cx): Shape {
  cte.shape ??= computeCte(cte, cx);
  return cte.shape;
}

function computeCte(cte: Cte, cx: Cx): Shape {
  const query = cte.node.ctequery as Node | undefined;
  const tag = query === undefined ? undefined : nodeTag(query);
  const payload = (query as Payload | undefined)?.[tag ?? ""] as Payload | undefined;
  let columns: Col[];
  if (tag === "SelectStmt") columns = selectColumns(payload as SelectStmt, cte.outer, cte.env, cx);
  else if (tag !== undefined && DATA_MODIFYING.has(tag))
    columns = returningColumns(tag, payload ?? {}, cte.outer, cte.env, cx);
  else throw OPAQUE;
  return applyAlias({ columns }, { colnames: cte.node.aliascolnames ?? [] });
}

function shapeKey(shape: Shape): string {
  return JSON.stringify([
    shape.columns.map((c) => (c.kind === "star" ? c : { ...c, sources: unique(c.sources).map(sourceKey).sort() })),
    [...(shape.aliases ?? [])].map(([name, sources]) => [name, unique(sources).map(sourceKey).sort()]),
  ]);
}

// --- INSERT, UPDATE, DELETE, MERGE ... RETURNING ----------------------------------------------------------------

const DATA_MODIFYING = new Set(["InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"]);

function returningColumns(
  tag: string,
  payload: Payload,
  parent: Scope | undefined,
  env: CteEnv | undefined,
  cx: Cx,
): Col[] {
  const stmt = payload as InsertStmt & UpdateStmt & DeleteStmt & MergeStmt;
  const returning = stmt.returningClause as ReturningClause | undefined;
  if (returning?.exprs === undefined || returning.exprs.length === 0) {
    // No rows come back, but which rows it changes, and whether it fails, still depend on what it reads.
    try {
      const inner = withClause(stmt.withClause, env, parent, cx);
      dmlUses(tag, stmt, dmlScope(tag, stmt, parent, inner, cx), inner, cx);
      finishCtes(inner, env, cx);
    } catch (error) {
      if (error !== OPAQUE) throw error;
      cx.incomplete = true;
    }
    return [];
  }
  const inner = withClause(stmt.withClause, env, parent, cx);
  const scope = dmlScope(tag, stmt, parent, inner, cx);
  const target = scope.from[0]!;
  // RETURNING old.* / new.* (PostgreSQL 18), under their default names or those given WITH (OLD AS o, NEW AS n).
  const rowNames = new Map([
    ["RETURNING_OPTION_OLD", "old"],
    ["RETURNING_OPTION_NEW", "new"],
  ]);
  for (const option of returning.options ?? []) {
    const given = (option as { ReturningOption?: { option?: string; value?: string } }).ReturningOption;
    if (given?.option !== undefined && given.value !== undefined) rowNames.set(given.option, given.value);
  }
  for (const name of rowNames.values()) {
    if (!scope.items.some((item) => item.name === name))
      scope.items.push({ name, qualified: undefined, shape: target });
  }
  dmlUses(tag, stmt, scope, inner, cx);
  const columns = inClause(cx, "RETURNING", () => targetList(returning.exprs ?? [], scope, inner, cx));
  finishCtes(inner, env, cx);
  return columns;
}

/** The names an INSERT, UPDATE, DELETE or MERGE sees: its target (first), then FROM, USING or the MERGE source. */
function dmlScope(
  tag: string,
  stmt: InsertStmt & UpdateStmt & DeleteStmt & MergeStmt,
  parent: Scope | undefined,
  inner: CteEnv | undefined,
  cx: Cx,
): Scope {
  const range = stmt.relation ?? {};
  // The target is always a real relation, never a CTE.
  const target = baseShape(relationName(range), cx);
  const scope: Scope = { items: [], from: [target], parent };
  const alias = range.alias?.aliasname;
  const qualified = alias === undefined && range.schemaname !== undefined ? relationName(range) : undefined;
  scope.items.push({ name: alias ?? range.relname, qualified, shape: target });
  if (tag === "InsertStmt") scope.items.push({ name: "excluded", qualified: undefined, shape: target });
  const others = tag === "UpdateStmt" ? stmt.fromClause : tag === "DeleteStmt" ? stmt.usingClause : undefined;
  inClause(cx, "FROM", () => {
    for (const node of [
      ...(others ?? []),
      ...(tag === "MergeStmt" && stmt.sourceRelation ? [stmt.sourceRelation] : []),
    ]) {
      const entry = fromItem(node, scope, inner, cx);
      scope.from.push(entry.shape);
      scope.items.push(...entry.items);
    }
  });
  return scope;
}

/** What a data-modifying statement decides on or computes: WHERE, SET, ON CONFLICT, MERGE ... ON and WHEN. */
function dmlUses(
  tag: string,
  stmt: InsertStmt & UpdateStmt & DeleteStmt & MergeStmt,
  scope: Scope,
  env: CteEnv | undefined,
  cx: Cx,
): void {
  const p = stmt as unknown as Payload;
  if (p.whereClause !== undefined) inClause(cx, "WHERE", () => decide(p.whereClause, scope, env, cx));
  if (tag === "UpdateStmt") inClause(cx, "SET", () => setValues(p.targetList, scope, env, cx));
  if (tag === "InsertStmt" && p.selectStmt !== undefined) {
    const select = (p.selectStmt as { SelectStmt?: SelectStmt }).SelectStmt;
    if (select !== undefined) selectColumns(select, scope.parent, env, cx);
  }
  const conflict = p.onConflictClause as Payload | undefined;
  if (conflict !== undefined) {
    const infer = conflict.infer as Payload | undefined;
    inClause(cx, "ON CONFLICT", () => {
      if (infer?.whereClause !== undefined) decide(infer.whereClause, scope, env, cx);
      if (conflict.whereClause !== undefined) decide(conflict.whereClause, scope, env, cx);
      setValues(conflict.targetList, scope, env, cx);
    });
  }
  if (tag === "MergeStmt") {
    if (p.joinCondition !== undefined) inClause(cx, "MERGE ... ON", () => decide(p.joinCondition, scope, env, cx));
    for (const node of (p.mergeWhenClauses ?? []) as Payload[]) {
      const when = node.MergeWhenClause as Payload | undefined;
      if (when === undefined) continue;
      inClause(cx, "MERGE ... WHEN", () => {
        if (when.condition !== undefined) decide(when.condition, scope, env, cx);
        setValues(when.targetList, scope, env, cx);
        for (const value of (when.values ?? []) as Node[]) operand(value, scope, env, cx);
      });
    }
  }
}

/** The values of SET a = ..., b = ... (storing masked values is refused elsewhere; this sees what they compute). */
function setValues(targets: unknown, scope: Scope, env: CteEnv | undefined, cx: Cx): void {
  for (const target of (targets ?? []) as { ResTarget?: ResTarget }[]) {
    if (target.ResTarget?.val !== undefined) operand(target.ResTarget.val, scope, env, cx);
  }
}

// --- expressions ------------------------------------------------------------------------------------------------

/** Nodes below which no column value can flow into an output. */
const NO_SOURCES = new Set([
  "A_Const",
  "A_Star",
  "ParamRef",
  "SQLValueFunction",
  "TypeName",
  "String",
  "Integer",
  "Float",
  "Boolean",
  "BitString",
  "GroupingFunc",
  "WindowDef",
  "SortBy",
]);

/** Wrappers a value passes through unchanged, or only rearranged, without any way to fail on it. */
const TRANSPARENT = new Set(["CoalesceExpr", "RowExpr", "A_ArrayExpr", "CollateClause", "List", "NamedArgExpr"]);

/**
 * Adds to `out` the sources of every value that flows into the expression `value`, and records the uses in it:
 * conditions and comparisons (decide), and computations that may fail on some values (an error is an answer).
 */
function exprSources(value: unknown, scope: Scope, env: CteEnv | undefined, cx: Cx, out: Src[]): void {
  if (Array.isArray(value)) {
    for (const item of value) exprSources(item, scope, env, cx, out);
    return;
  }
  if (value === null || typeof value !== "object") return;
  const object = value as Payload;
  const tag = nodeTag(object);
  if (tag === undefined) {
    for (const key in object) exprSources(object[key], scope, env, cx, out);
    return;
  }
  const payload = object[tag] as Payload;
  switch (tag) {
    case "ColumnRef":
      out.push(...columnRef((payload as ColumnRef).fields ?? [], scope));
      return;
    case "FuncCall":
      funcCall(payload as FuncCall, scope, env, cx, out);
      return;
    case "SubLink":
      if (payload.subLinkType === "EXPR_SUBLINK" || payload.subLinkType === "ARRAY_SUBLINK") {
        exprSources(payload.subselect, scope, env, cx, out);
      } else out.push(...decide(object, scope, env, cx));
      return;
    case "SelectStmt":
      out.push(...allSources(selectColumns(payload as SelectStmt, scope, env, cx)));
      return;
    case "CaseExpr":
      out.push(...caseExpr(payload, scope, env, cx, false));
      return;
    case "A_Expr":
      if (payload.kind === "AEXPR_OP" && operatorName(payload.name) === "||") {
        exprSources(payload.lexpr, scope, env, cx, out);
        exprSources(payload.rexpr, scope, env, cx, out);
        return;
      }
      out.push(...decide(object, scope, env, cx));
      return;
    case "BoolExpr":
    case "NullTest":
    case "BooleanTest":
      out.push(...decide(object, scope, env, cx));
      return;
    case "TypeCast": {
      const type = typeNameOf(payload.typeName);
      if (TEXT_TYPES.has(type)) exprSources(payload.arg, scope, env, cx, out);
      else mayFail(payload.arg, scope, env, cx, out, `cast to ${type}`);
      return;
    }
    case "A_Indirection": {
      // (composite).field selects a value whole; a subscript may be out of range.
      const fields = ((payload.indirection ?? []) as unknown[]).every((node) => stringOf(node) !== undefined);
      if (fields) exprSources(payload.arg, scope, env, cx, out);
      else mayFail(payload, scope, env, cx, out, "a subscript");
      return;
    }
    default:
      if (NO_SOURCES.has(tag)) return;
      if (TRANSPARENT.has(tag)) exprSources(payload, scope, env, cx, out);
      else mayFail(payload, scope, env, cx, out, FIXED_NAMES[tag] ?? tag);
  }
}

/** A computation that may fail, or answer NULL, on some values: what flows into it is a use of kind other. */
function mayFail(value: unknown, scope: Scope, env: CteEnv | undefined, cx: Cx, out: Src[], detail: string): void {
  const local: Src[] = [];
  exprSources(value, scope, env, cx, local);
  use(cx, "other", local, undefined, cx.clause, detail);
  out.push(...local);
}

/** Types a cast to which cannot fail (or tell anything by failing): text, varchar, char, name. */
const TEXT_TYPES = new Set(["text", "varchar", "bpchar", "char", "name"]);

function typeNameOf(typeName: unknown): string {
  const type = typeName as { names?: Node[]; arrayBounds?: unknown[] } | undefined;
  const names = (type?.names ?? []).map((node) => stringOf(node) ?? "");
  const last = names[names.length - 1] ?? "?";
  return type?.arrayBounds !== undefined && type.arrayBounds.length > 0 ? `${last}[]` : last;
}

function operatorName(name: unknown): string {
  const parts = ((name ?? []) as Node[]).map((node) => stringOf(node) ?? "");
  return parts[parts.length - 1] ?? "";
}

/**
 * Built-in functions a masked value may pass through in a computed output (which is then redacted whole): each
 * returns NULL only for NULL input and cannot fail, whatever the value, in the arguments named ("first": only the
 * first argument may carry a masked value; "all"; "rest": all but the first). Any other function of a masked value
 * (arithmetic, regular expressions, casts to other types, user functions) could answer by failing or by taking its
 * time, and is a use of kind other.
 */
const SAFE_FUNCTIONS: Readonly<Record<string, "first" | "all" | "rest">> = {
  upper: "first",
  lower: "first",
  initcap: "first",
  length: "first",
  char_length: "first",
  character_length: "first",
  octet_length: "first",
  bit_length: "first",
  md5: "first",
  btrim: "first",
  ltrim: "first",
  rtrim: "first",
  left: "first",
  right: "first",
  substr: "first",
  substring: "first",
  overlay: "first",
  split_part: "first",
  reverse: "first",
  replace: "first",
  translate: "first",
  lpad: "first",
  rpad: "first",
  quote_literal: "first",
  quote_ident: "first",
  quote_nullable: "first",
  concat: "all",
  concat_ws: "all",
  format: "rest",
  to_json: "first",
  to_jsonb: "first",
  row_to_json: "first",
  array_to_json: "first",
  json_build_object: "all",
  jsonb_build_object: "all",
  json_build_array: "all",
  jsonb_build_array: "all",
  min: "first",
  max: "first",
  sum: "first",
  avg: "first",
  array_agg: "first",
  string_agg: "all",
  json_agg: "first",
  jsonb_agg: "first",
  json_object_agg: "all",
  jsonb_object_agg: "all",
  bool_and: "first",
  bool_or: "first",
  every: "first",
  lag: "first",
  lead: "first",
  first_value: "first",
  last_value: "first",
  nth_value: "first",
  row_number: "first",
  rank: "first",
  dense_rank: "first",
  percent_rank: "first",
  cume_dist: "first",
};

/** Whether argument `i` of a call to the built-in `name` may carry a masked value (see SAFE_FUNCTIONS). */
function safeArgument(name: string | undefined, call: FuncCall, i: number): boolean {
  const rule = name === undefined ? undefined : SAFE_FUNCTIONS[name];
  if (rule === undefined) return false;
  // substring(x from 'pattern') is a regular expression; only its integer forms are safe.
  if (name === "substring" && (call.args ?? []).slice(1).some((arg) => !integerConstant(arg))) return false;
  return rule === "all" || (rule === "first" ? i === 0 : i > 0);
}

function integerConstant(node: unknown): boolean {
  const constant = (node as { A_Const?: Payload } | undefined)?.A_Const;
  return constant?.ival !== undefined;
}

function funcCall(call: FuncCall, scope: Scope, env: CteEnv | undefined, cx: Cx, out: Src[]): void {
  const parts = funcParts(call);
  const shown = call.funcformat === "COERCE_SQL_SYNTAX" && parts[0] === "pg_catalog" ? parts.slice(1) : parts;
  const name = shown.join(".").toLowerCase();
  const builtin =
    parts.length === 1 ? parts[0] : parts.length === 2 && parts[0] === "pg_catalog" ? parts[1] : undefined;
  if (call.agg_filter !== undefined) inClause(cx, "FILTER", () => decide(call.agg_filter, scope, env, cx));
  if (call.over !== undefined) windowUses(call.over as Payload, scope, env, cx);
  if (call.agg_within_group !== true) {
    for (const sort of call.agg_order ?? []) {
      const node = (sort as { SortBy?: Payload }).SortBy?.node;
      use(cx, "other", operand(node, scope, env, cx), undefined, "an aggregate's ORDER BY");
    }
  }
  // count() says how many rows, not what is in them: count(x) how many are not NULL (a whole-value test);
  // count(DISTINCT x) how many values differ (a grouping).
  if (builtin === "count") {
    for (const arg of call.args ?? []) {
      const sources = operand(arg, scope, env, cx);
      use(cx, call.agg_distinct === true ? "group" : "lookup", sources, undefined, "count()");
    }
    return;
  }
  if (cx.isOpaque(name, parts)) out.push({ opaque: name });
  (call.args ?? []).forEach((arg, i) => {
    const local: Src[] = [];
    exprSources(arg, scope, env, cx, local);
    if (!safeArgument(builtin, call, i)) use(cx, "other", local, undefined, cx.clause, `function ${name}()`);
    if (call.agg_distinct === true) use(cx, "group", operandOf(arg, local), undefined, `DISTINCT in ${name}()`);
    out.push(...local);
  });
  // Ordered-set aggregates take their input from WITHIN GROUP (ORDER BY x): percentile_disc, mode.
  if (call.agg_within_group === true) {
    for (const sort of call.agg_order ?? []) {
      const local: Src[] = [];
      exprSources((sort as { SortBy?: Payload }).SortBy?.node, scope, env, cx, local);
      use(cx, "other", local, undefined, cx.clause, `function ${name}() WITHIN GROUP`);
      out.push(...local);
    }
  }
}

function funcParts(call: FuncCall | undefined): string[] {
  return (call?.funcname ?? []).map((node) => stringOf(node) ?? "");
}

// --- uses -------------------------------------------------------------------------------------------------------

function inClause<T>(cx: Cx, clause: string, run: () => T): T {
  const saved = cx.clause;
  cx.clause = clause;
  try {
    return run();
  } finally {
    cx.clause = saved;
  }
}

function use(
  cx: Cx,
  kind: UseKind,
  sources: readonly Src[],
  other?: readonly Src[],
  clause = cx.clause,
  detail?: string,
): void {
  if (sources.length === 0 && (other === undefined || other.length === 0)) return;
  const entry: Use = { kind, clause, sources: [...sources] };
  if (other !== undefined) entry.other = [...other];
  if (detail !== undefined) entry.detail = detail;
  cx.uses.push(entry);
}

/** The same sources, each marked derived (a whole row always is). */
function derived(sources: readonly Src[]): Src[] {
  return unique(sources).map((s) =>
    "opaque" in s || "wholeRow" in s || s.derived === true ? s : { ...s, derived: true },
  );
}

/** The sources of a value: as they are for a column reference (or a scalar subquery), else derived. */
function operand(expr: unknown, scope: Scope, env: CteEnv | undefined, cx: Cx): Src[] {
  const out: Src[] = [];
  exprSources(expr, scope, env, cx, out);
  return operandOf(expr, out);
}

function operandOf(expr: unknown, sources: readonly Src[]): Src[] {
  if (expr === null || typeof expr !== "object") return derived(sources);
  const ref = (expr as { ColumnRef?: ColumnRef }).ColumnRef;
  if (ref !== undefined && !isStar(ref.fields?.[ref.fields.length - 1])) return unique(sources);
  const link = (expr as { SubLink?: Payload }).SubLink;
  if (link?.subLinkType === "EXPR_SUBLINK") return unique(sources);
  return derived(sources);
}

/**
 * An expression used as a condition or a comparison: records its uses and returns every source it reads. Only
 * `=`, `<>`, IS [NOT] DISTINCT FROM, NULLIF, IN, `= ANY` / `<> ALL` and IS [NOT] NULL compare whole values; AND, OR,
 * NOT and CASE combine conditions; anything else used as a condition is tested whole (`WHERE flag`).
 */
function decide(expr: unknown, scope: Scope, env: CteEnv | undefined, cx: Cx): Src[] {
  if (expr === null || typeof expr !== "object") return [];
  const tag = nodeTag(expr);
  const payload = (expr as Payload)[tag ?? ""] as Payload;
  switch (tag) {
    case "BoolExpr":
      return ((payload.args ?? []) as unknown[]).flatMap((arg) => decide(arg, scope, env, cx));
    case "A_Expr":
      return comparison(payload, scope, env, cx);
    case "NullTest": {
      const sources = operand(payload.arg, scope, env, cx);
      use(cx, "lookup", sources, undefined, cx.clause, "IS NULL");
      return sources;
    }
    case "BooleanTest":
      return decide(payload.arg, scope, env, cx);
    case "SubLink":
      return subLink(payload, scope, env, cx);
    case "CaseExpr":
      return caseExpr(payload, scope, env, cx, true);
    default: {
      const sources = operand(expr, scope, env, cx);
      use(cx, "lookup", sources);
      return sources;
    }
  }
}

const A_EXPR_NAMES: Readonly<Record<string, string>> = {
  AEXPR_LIKE: "LIKE",
  AEXPR_ILIKE: "ILIKE",
  AEXPR_SIMILAR: "SIMILAR TO",
  AEXPR_BETWEEN: "BETWEEN",
  AEXPR_NOT_BETWEEN: "NOT BETWEEN",
  AEXPR_BETWEEN_SYM: "BETWEEN SYMMETRIC",
  AEXPR_NOT_BETWEEN_SYM: "NOT BETWEEN SYMMETRIC",
};

function comparison(payload: Payload, scope: Scope, env: CteEnv | undefined, cx: Cx): Src[] {
  const op = operatorName(payload.name);
  const whole = op === "=" || op === "<>" || op === "!=";
  switch (payload.kind) {
    case "AEXPR_OP":
      if (payload.lexpr !== undefined && whole) return compare(payload.lexpr, payload.rexpr, scope, env, cx);
      break;
    case "AEXPR_DISTINCT":
    case "AEXPR_NOT_DISTINCT":
    case "AEXPR_NULLIF":
      return compare(payload.lexpr, payload.rexpr, scope, env, cx);
    case "AEXPR_IN": {
      const left = operand(payload.lexpr, scope, env, cx);
      const list = (payload.rexpr as { List?: { items?: unknown[] } } | undefined)?.List?.items ?? [payload.rexpr];
      const all = [...left];
      for (const item of list) {
        const right = operand(item, scope, env, cx);
        compareSides(left, right, cx);
        all.push(...right);
      }
      return all;
    }
    case "AEXPR_OP_ANY":
    case "AEXPR_OP_ALL": {
      if (!whole) break;
      const left = operand(payload.lexpr, scope, env, cx);
      const right = operand(payload.rexpr, scope, env, cx);
      // = ANY($1), <> ALL(ARRAY['a', 'b']): whole values against constants. Against an array of column values
      // the elements are not each a column's value: not a whole-value comparison.
      if (right.length === 0) use(cx, "lookup", left, undefined, cx.clause, op === "=" ? "= ANY" : "<> ALL");
      else use(cx, "other", [...left, ...right], undefined, cx.clause, `${op} ANY/ALL of an array of values`);
      return [...left, ...right];
    }
  }
  const left = operand(payload.lexpr, scope, env, cx);
  const right = operand(payload.rexpr, scope, env, cx);
  const detail = A_EXPR_NAMES[String(payload.kind)] ?? `operator ${op}`;
  use(cx, "other", [...left, ...right], undefined, cx.clause, detail);
  return [...left, ...right];
}

function compare(l: unknown, r: unknown, scope: Scope, env: CteEnv | undefined, cx: Cx): Src[] {
  const left = operand(l, scope, env, cx);
  const right = operand(r, scope, env, cx);
  compareSides(left, right, cx);
  return [...left, ...right];
}

/** A whole-value comparison: with a constant or parameter (no sources) a lookup, else an equality. */
function compareSides(left: readonly Src[], right: readonly Src[], cx: Cx): void {
  if (right.length === 0) use(cx, "lookup", left);
  else if (left.length === 0) use(cx, "lookup", right);
  else use(cx, "equality", left, right);
}

function subLink(payload: Payload, scope: Scope, env: CteEnv | undefined, cx: Cx): Src[] {
  const type = payload.subLinkType;
  const select = (payload.subselect as { SelectStmt?: SelectStmt } | undefined)?.SelectStmt ?? {};
  // The subquery's own WHERE, ORDER BY... are recorded as it is walked.
  const inner = allSources(selectColumns(select, scope, env, cx));
  if (type === "EXISTS_SUBLINK") return inner;
  if (type === "EXPR_SUBLINK") {
    use(cx, "lookup", inner);
    return inner;
  }
  const test = operand(payload.testexpr, scope, env, cx);
  const op = operatorName(payload.operName);
  if ((type === "ANY_SUBLINK" || type === "ALL_SUBLINK") && (op === "" || op === "=" || op === "<>" || op === "!=")) {
    // x IN (SELECT y ...): x compared whole with each y.
    compareSides(test, inner, cx);
  } else use(cx, "other", [...test, ...inner], undefined, cx.clause, `a subquery compared with ${op || "a row"}`);
  return [...test, ...inner];
}

/** CASE: its conditions decide (clause CASE WHEN); its results are values, or conditions when the CASE is one. */
function caseExpr(payload: Payload, scope: Scope, env: CteEnv | undefined, cx: Cx, condition: boolean): Src[] {
  const all: Src[] = [];
  const results: unknown[] = [];
  inClause(cx, "CASE WHEN", () => {
    const arg = payload.arg;
    const left = arg === undefined ? undefined : operand(arg, scope, env, cx);
    if (left !== undefined) all.push(...left);
    for (const node of (payload.args ?? []) as { CaseWhen?: Payload }[]) {
      const when = node.CaseWhen;
      if (when === undefined) continue;
      if (left === undefined) all.push(...decide(when.expr, scope, env, cx));
      else {
        const right = operand(when.expr, scope, env, cx);
        compareSides(left, right, cx);
        all.push(...right);
      }
      results.push(when.result);
    }
  });
  if (payload.defresult !== undefined) results.push(payload.defresult);
  for (const result of results) {
    if (condition) all.push(...decide(result, scope, env, cx));
    else exprSources(result, scope, env, cx, all);
  }
  return all;
}

/** WHERE, GROUP BY, HAVING, WINDOW and DISTINCT of one SELECT. */
function selectUses(stmt: SelectStmt, scope: Scope, env: CteEnv | undefined, cx: Cx, outputs: Col[]): void {
  if (stmt.whereClause !== undefined) inClause(cx, "WHERE", () => decide(stmt.whereClause, scope, env, cx));
  const groupKey = (item: unknown): void => {
    const set = (item as { GroupingSet?: { content?: unknown[] } }).GroupingSet;
    if (set !== undefined) for (const inner of set.content ?? []) groupKey(inner);
    else use(cx, "group", keySources(item, scope, env, cx, outputs));
  };
  inClause(cx, "GROUP BY", () => {
    for (const item of stmt.groupClause ?? []) groupKey(item);
  });
  if (stmt.havingClause !== undefined) inClause(cx, "HAVING", () => decide(stmt.havingClause, scope, env, cx));
  for (const node of stmt.windowClause ?? []) {
    const def = (node as { WindowDef?: Payload }).WindowDef;
    if (def !== undefined) windowUses(def, scope, env, cx);
  }
  const distinct = (stmt.distinctClause ?? []) as unknown[];
  if (distinct.length > 0 && distinct.every((item) => item !== null && Object.keys(item as object).length === 0)) {
    // SELECT DISTINCT: rows are de-duplicated by every output column.
    for (const c of outputs) use(cx, "group", colSources(c), undefined, "DISTINCT");
  } else {
    inClause(cx, "DISTINCT ON", () => {
      for (const item of distinct) use(cx, "group", keySources(item, scope, env, cx, outputs));
    });
  }
}

/** ORDER BY, LIMIT and OFFSET (of a SELECT, VALUES or a set operation). */
function orderAndLimitUses(stmt: SelectStmt, scope: Scope, env: CteEnv | undefined, cx: Cx, outputs: Col[]): void {
  inClause(cx, "ORDER BY", () => {
    for (const sort of stmt.sortClause ?? []) {
      const node = (sort as { SortBy?: Payload }).SortBy?.node;
      use(cx, "other", keySources(node, scope, env, cx, outputs));
    }
  });
  if (stmt.limitCount !== undefined) {
    inClause(cx, "LIMIT", () => use(cx, "other", operand(stmt.limitCount, scope, env, cx)));
  }
  if (stmt.limitOffset !== undefined) {
    inClause(cx, "OFFSET", () => use(cx, "other", operand(stmt.limitOffset, scope, env, cx)));
  }
}

/**
 * A GROUP BY, DISTINCT ON or ORDER BY item: an output column by position (`ORDER BY 1`) or by name (`ORDER BY x`
 * where x is an alias), else an expression over the FROM items. A name may be both: both count.
 */
function keySources(node: unknown, scope: Scope, env: CteEnv | undefined, cx: Cx, outputs: readonly Col[]): Src[] {
  if (integerConstant(node)) {
    const ival = (node as { A_Const: { ival: { ival?: number } } }).A_Const.ival.ival ?? 0;
    if (!outputs.every((c) => c.kind === "column")) return allSources(outputs);
    const c = outputs[ival - 1];
    return c === undefined ? [] : colSources(c);
  }
  const sources = operand(node, scope, env, cx);
  const fields = (node as { ColumnRef?: ColumnRef } | undefined)?.ColumnRef?.fields;
  if (fields?.length === 1) {
    const name = stringOf(fields[0]);
    for (const c of outputs) if (c.kind === "column" && c.name === name) sources.push(...colSources(c));
  }
  return sources;
}

/** A window: PARTITION BY groups, ORDER BY and the frame's offsets order. */
function windowUses(def: Payload, scope: Scope, env: CteEnv | undefined, cx: Cx): void {
  inClause(cx, "PARTITION BY", () => {
    for (const item of (def.partitionClause ?? []) as unknown[]) use(cx, "group", operand(item, scope, env, cx));
  });
  inClause(cx, "a window's ORDER BY", () => {
    for (const sort of (def.orderClause ?? []) as { SortBy?: Payload }[]) {
      use(cx, "other", operand(sort.SortBy?.node, scope, env, cx));
    }
  });
  for (const offset of [def.startOffset, def.endOffset]) {
    if (offset !== undefined) use(cx, "other", operand(offset, scope, env, cx), undefined, "a window frame");
  }
}

/** UNION (without ALL), INTERSECT and EXCEPT match rows by value, column by column. */
function setOperationUses(op: string, left: readonly Col[], right: readonly Col[], cx: Cx): void {
  const clause = op === "SETOP_UNION" ? "UNION" : op === "SETOP_INTERSECT" ? "INTERSECT" : "EXCEPT";
  const known = (cols: readonly Col[]) => cols.every((c) => c.kind === "column");
  if (!known(left) || !known(right) || left.length !== right.length) {
    use(cx, "other", [...allSources(left), ...allSources(right)], undefined, clause);
    return;
  }
  left.forEach((c, i) => {
    const l = colSources(c);
    const r = colSources(right[i]!);
    if (l.length > 0 && r.length > 0) use(cx, "equality", l, r, clause);
    else use(cx, "group", [...l, ...r], undefined, clause);
  });
}

/** JOIN ... ON decides; USING and NATURAL compare the named columns of both sides for equality. */
function joinUses(
  payload: Payload,
  left: { shape: Shape; items: Item[] },
  right: { shape: Shape; items: Item[] },
  level: Scope,
  using: readonly string[],
  env: CteEnv | undefined,
  cx: Cx,
): void {
  if (payload.quals !== undefined) {
    const scope: Scope = { items: [...level.items, ...left.items, ...right.items], from: [], parent: level.parent };
    inClause(cx, "JOIN ... ON", () => decide(payload.quals, scope, env, cx));
  }
  let common = using;
  if (payload.isNatural === true) {
    if (!fullyKnown(left.shape) || !fullyKnown(right.shape)) {
      use(cx, "other", [...wholeRow(left.shape), ...wholeRow(right.shape)], undefined, "NATURAL JOIN");
      return;
    }
    const rightNames = new Set(right.shape.columns.map((c) => (c.kind === "column" ? c.name : "")));
    common = left.shape.columns.flatMap((c) => (c.kind === "column" && rightNames.has(c.name) ? [c.name] : []));
  }
  const clause = payload.isNatural === true ? "NATURAL JOIN" : "JOIN ... USING";
  for (const name of common) {
    use(cx, "equality", lookup(left.shape, name).sources, lookup(right.shape, name).sources, clause);
  }
}

/** CTEs of one WITH that nothing referenced: their uses count all the same (a data-modifying one runs anyway). */
function finishCtes(inner: CteEnv | undefined, env: CteEnv | undefined, cx: Cx): void {
  for (let at = inner; at !== undefined && at !== env; at = at.parent) {
    for (const cte of at.entries.values()) {
      if (cte.shape !== undefined) continue;
      try {
        inClause(cx, "WITH", () => cteShape(cte, cx));
      } catch (error) {
        if (error !== OPAQUE) throw error;
        cx.incomplete = true;
      }
    }
  }
}

// --- names ------------------------------------------------------------------------------------------------------

/** Resolves a column reference as PostgreSQL would, keeping every candidate it cannot rule out. */
function columnRef(fields: readonly Node[], scope: Scope): Src[] {
  const parts = fields.map((field) => (isStar(field) ? "*" : (stringOf(field) ?? "")));
  if (parts.length === 1) return parts[0] === "*" ? scope.from.flatMap(wholeRow) : unqualified(parts[0]!, scope);
  const last = parts[parts.length - 1]!;
  // t.c or t.* ; s.t.c ; db.s.t.c
  for (let split = parts.length - 1; split >= 1; split--) {
    const item = findItem(scope, parts.slice(0, split));
    if (item === undefined) continue;
    if (split === parts.length - 1) return last === "*" ? wholeRow(item.shape) : lookup(item.shape, last).sources;
    // t.c.f: field f of composite column c.
    return lookup(item.shape, parts[split]!).sources;
  }
  // c.f: field f of composite column c.
  return unqualified(parts[0]!, scope);
}

/**
 * An unqualified name: a column of the nearest query level that can have it, else a whole-row reference to a FROM
 * item of that name. A level whose relations' columns are unknown may or may not have it, so the search goes on
 * outwards and keeps both.
 */
function unqualified(name: string, scope: Scope): Src[] {
  const out: Src[] = [];
  for (let level: Scope | undefined = scope; level !== undefined; level = level.parent) {
    let certain = false;
    for (const item of level.items) {
      const found = lookup(item.shape, name);
      if (!found.found) continue;
      out.push(...found.sources);
      certain ||= found.certain;
    }
    if (certain) break;
    const named = level.items.filter((item) => item.name === name);
    for (const item of named) out.push(...wholeRow(item.shape));
    if (named.length > 0) break;
  }
  return out;
}

function findItem(scope: Scope, qualifier: readonly string[]): Item | undefined {
  const dotted = qualifier.join(".");
  for (let level: Scope | undefined = scope; level !== undefined; level = level.parent) {
    const item = level.items.find((i) => (qualifier.length === 1 ? i.name === dotted : i.qualified === dotted));
    if (item !== undefined) return item;
  }
  return undefined;
}

function lookup(shape: Shape, name: string): { sources: Src[]; certain: boolean; found: boolean } {
  const alias = shape.aliases?.get(name);
  if (alias !== undefined) return { sources: alias, certain: true, found: true };
  const sources: Src[] = [];
  let certain = false;
  let found = false;
  for (const c of shape.columns) {
    if (c.kind === "column") {
      if (c.name !== name) continue;
      sources.push(...c.sources);
      certain = true;
    } else if (c.kind === "star") {
      if (c.except.includes(name)) continue;
      sources.push({ relation: c.relation, column: name });
    } else sources.push(...c.sources);
    found = true;
  }
  if (shape.anyName !== undefined) {
    sources.push(...shape.anyName);
    found = true;
  }
  return { sources, certain, found };
}

function wholeRow(shape: Shape): Src[] {
  if (shape.relation !== undefined) return [{ relation: shape.relation, wholeRow: true }];
  const out = allSources(shape.columns);
  for (const sources of shape.aliases?.values() ?? []) out.push(...sources);
  if (shape.anyName !== undefined) out.push(...shape.anyName);
  return out;
}

function allSources(columns: readonly Col[]): Src[] {
  return columns.flatMap(colSources);
}

function colSources(c: Col): Src[] {
  return c.kind === "star" ? [{ relation: c.relation, wholeRow: true }] : c.sources;
}

function fullyKnown(shape: Shape): boolean {
  return shape.anyName === undefined && shape.columns.every((c) => c.kind === "column");
}

function col(name: string, sources: Src[]): Col {
  return { kind: "column", name, sources: unique(sources) };
}

function emptyScope(): Scope {
  return { items: [], from: [], parent: undefined };
}

function temporary(range: RangeVar | undefined): boolean {
  return range?.relpersistence === "t" || range?.schemaname === "pg_temp";
}

function relationName(range: RangeVar): string {
  return [range.catalogname, range.schemaname, range.relname].filter((part) => part !== undefined).join(".");
}

function names(nodes: readonly Node[] | undefined): string[] {
  return (nodes ?? []).map((node) => stringOf(node) ?? "");
}

function stringOf(node: unknown): string | undefined {
  if (node === null || typeof node !== "object" || !("String" in node)) return undefined;
  return (node.String as { sval?: string }).sval ?? "";
}

function isStar(node: unknown): boolean {
  return node !== null && typeof node === "object" && "A_Star" in node;
}

/** The tag of a wrapped node: its one key, capitalised (field names are not). */
function nodeTag(object: object): string | undefined {
  let tag: string | undefined;
  for (const key in object) {
    if (tag !== undefined) return undefined;
    tag = key;
  }
  if (tag === undefined) return undefined;
  const first = tag.charCodeAt(0);
  return first >= 65 && first <= 90 ? tag : undefined;
}

function sourceKey(source: Src): string {
  if ("opaque" in source) return `o\u0000${source.opaque}`;
  if ("wholeRow" in source) return `w\u0000${source.relation}`;
  return `c\u0000${source.relation}\u0000${source.column}${source.derived === true ? "\u0000d" : ""}`;
}

function unique(sources: readonly Src[]): Src[] {
  if (sources.length < 2) return [...sources];
  const seen = new Map<string, Src>();
  for (const source of sources) {
    const key = sourceKey(source);
    if (!seen.has(key)) seen.set(key, source);
  }
  return [...seen.values()];
}

function compareSources(a: Source, b: Source): number {
  const ka = sourceKey(a);
  const kb = sourceKey(b);
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

// --- output names (PostgreSQL's FigureColname, best effort) -----------------------------------------------------

const SQL_VALUE_NAMES: Readonly<Record<string, string>> = {
  SVFOP_CURRENT_DATE: "current_date",
  SVFOP_CURRENT_TIME: "current_time",
  SVFOP_CURRENT_TIME_N: "current_time",
  SVFOP_CURRENT_TIMESTAMP: "current_timestamp",
  SVFOP_CURRENT_TIMESTAMP_N: "current_timestamp",
  SVFOP_LOCALTIME: "localtime",
  SVFOP_LOCALTIME_N: "localtime",
  SVFOP_LOCALTIMESTAMP: "localtimestamp",
  SVFOP_LOCALTIMESTAMP_N: "localtimestamp",
  SVFOP_CURRENT_ROLE: "current_role",
  SVFOP_CURRENT_USER: "current_user",
  SVFOP_USER: "user",
  SVFOP_SESSION_USER: "session_user",
  SVFOP_CURRENT_CATALOG: "current_catalog",
  SVFOP_CURRENT_SCHEMA: "current_schema",
};

const FIXED_NAMES: Readonly<Record<string, string>> = {
  CaseExpr: "case",
  CoalesceExpr: "coalesce",
  A_ArrayExpr: "array",
  RowExpr: "row",
  GroupingFunc: "grouping",
  JsonObjectConstructor: "json_object",
  JsonArrayConstructor: "json_array",
  JsonArrayQueryConstructor: "json_array",
  JsonParseExpr: "json",
  JsonScalarExpr: "json_scalar",
  JsonSerializeExpr: "json_serialize",
  JsonObjectAgg: "json_objectagg",
  JsonArrayAgg: "json_arrayagg",
  MergeSupportFunc: "merge_action",
};

function figureName(node: Node | undefined): string {
  return nameOf(node) ?? "?column?";
}

function nameOf(node: unknown): string | undefined {
  if (node === null || typeof node !== "object") return undefined;
  const tag = nodeTag(node);
  if (tag === undefined) return undefined;
  const payload = (node as Payload)[tag] as Payload;
  switch (tag) {
    case "ColumnRef": {
      const fields = (payload.fields ?? []) as Node[];
      return stringOf(fields[fields.length - 1]);
    }
    case "A_Indirection": {
      const indirection = (payload.indirection ?? []) as Node[];
      return stringOf(indirection[indirection.length - 1]) ?? nameOf(payload.arg);
    }
    case "FuncCall": {
      const parts = funcParts(payload as FuncCall);
      return parts[parts.length - 1];
    }
    case "A_Expr":
      return payload.kind === "AEXPR_NULLIF" ? "nullif" : undefined;
    case "TypeCast":
    case "CollateClause": {
      const inner = nameOf(payload.arg);
      if (inner !== undefined || tag === "CollateClause") return inner;
      const typeNames = ((payload.typeName as { names?: Node[] } | undefined)?.names ?? []) as Node[];
      return stringOf(typeNames[typeNames.length - 1]);
    }
    case "MinMaxExpr":
      return payload.op === "IS_LEAST" ? "least" : "greatest";
    case "SubLink":
      if (payload.subLinkType === "EXISTS_SUBLINK") return "exists";
      if (payload.subLinkType === "ARRAY_SUBLINK") return "array";
      if (payload.subLinkType === "EXPR_SUBLINK") {
        const select = (payload.subselect as { SelectStmt?: SelectStmt } | undefined)?.SelectStmt;
        const first = (select?.targetList?.[0] as { ResTarget?: ResTarget } | undefined)?.ResTarget;
        return first?.name ?? nameOf(first?.val);
      }
      return undefined;
    case "SQLValueFunction":
      return SQL_VALUE_NAMES[String(payload.op)];
    case "XmlExpr":
      return typeof payload.op === "string" ? payload.op.replace(/^IS_/, "").toLowerCase() : undefined;
    case "XmlSerialize":
      return "xmlserialize";
    case "JsonFuncExpr":
      return typeof payload.op === "string" ? payload.op.toLowerCase().replace(/_op$/, "") : undefined;
    default:
      return FIXED_NAMES[tag];
  }
}

// --- which functions are opaque ---------------------------------------------------------------------------------

/**
 * Read-only built-ins that still return data the parse tree does not show: large objects, another cursor's rows,
 * server files, settings files.
 */
const DATA_READING_BUILTINS = new Set([
  "lo_get",
  "loread",
  "cursor_to_xml",
  "cursor_to_xmlschema",
  "pg_read_file",
  "pg_read_binary_file",
  "current_query",
]);

const transparent = new Map<string, boolean>();

/**
 * The default isOpaqueFunction: opaque unless the name resolves to a PostgreSQL built-in that @agentgate/sql judges
 * read-only (unqualified or pg_catalog-qualified, spelled as the built-in is) and that reads no data from outside
 * the parse tree. User-defined functions, procedures and extension functions are all opaque: a SQL function may
 * SELECT from any table.
 */
export function defaultIsOpaqueFunction(_name: string, parts: readonly string[]): boolean {
  const builtin =
    parts.length === 1 ? parts[0] : parts.length === 2 && parts[0] === "pg_catalog" ? parts[1] : undefined;
  if (builtin === undefined || DATA_READING_BUILTINS.has(builtin)) return true;
  let known = transparent.get(builtin);
  if (known === undefined) {
    known = judgedReadOnly(builtin);
    // Bounded: names are chosen by clients.
    if (transparent.size >= 4096) transparent.clear();
    transparent.set(builtin, known);
  }
  return !known;
}

// @agentgate/sql exports its judgement of functions only through analyze(): ask it about a call of this one
// function. (Exporting functionEffect() from @agentgate/sql would make this a lookup.)
function judgedReadOnly(name: string): boolean {
  try {
    const analysis = analyze(`SELECT pg_catalog."${name.replace(/"/g, '""')}"()`, { fingerprints: false });
    const statement = analysis.statements[0];
    return (
      statement !== undefined &&
      statement.classes.length === 1 &&
      statement.classes[0] === "read" &&
      statement.flags.unknownFunctions === undefined &&
      statement.flags.dynamicSql === undefined
    );
  } catch (error) {
    if (error instanceof SqlAnalysisError) return false;
    throw error;
  }
}
