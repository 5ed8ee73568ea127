// What the proxy needs to know of each statement of a query string to mask its results: the lineage of what it
// returns, the session state it changes (prepared statements, cursors) that later lineage depends on, how a COPY
// writes its rows, and which columns it uses only to filter, join, group or order (a predicate on a masked column
// leaks by inference, so a policy may refuse it). One parse for all of it.
import type { Node } from "libpg-query";
import { hasSqlDetails, parseSync } from "libpg-query";
import { MaskingError } from "./errors.ts";
import {
  analyzeStatement,
  type ColumnUse,
  type LineageOptions,
  lineageOfStatement,
  type OutputLineage,
} from "./lineage.ts";

/** How COPY ... TO writes rows (text format unless said otherwise). */
export interface CopyFormat {
  format: "text" | "csv" | "binary";
  delimiter?: string;
  null?: string;
  quote?: string;
  escape?: string;
  /** CSV only: the first row is the column names. */
  header: boolean;
}

export interface StatementShape {
  lineage: OutputLineage;
  /** PREPARE name AS ...: the statement's text, which EXECUTE name will run. */
  prepare?: { name: string; text: string };
  /** DEALLOCATE name, or "" for DEALLOCATE ALL. */
  deallocate?: string;
  /** DECLARE name CURSOR FOR ...: FETCH from it returns `lineage`. */
  declare?: string;
  /** CLOSE name, or "" for CLOSE ALL. */
  close?: string;
  /** COPY ... TO (rows leave the server). */
  copyTo?: CopyFormat;
  /**
   * How the statement uses values other than by returning them (see ColumnUse), or "incomplete" when the walk could
   * not see all of it: then predicateColumns is all there is to judge by.
   */
  uses: ColumnUse[] | "incomplete";
  /** Column names used in WHERE, JOIN ... ON, GROUP BY, HAVING, ORDER BY, DISTINCT ON and window clauses. */
  predicateColumns: string[];
  /** Every relation the statement names, as written ("t", "s.t"): an error it raises may quote their values. */
  relations: string[];
  /**
   * Values the statement stores (CREATE TABLE AS, SELECT INTO, INSERT ... SELECT, also inside a WITH): the lineage
   * of each query whose rows are stored. A masked value stored elsewhere would be read back unmasked.
   */
  storedLineages: OutputLineage[];
  /** Column names whose values UPDATE ... SET or MERGE store. */
  storedColumns: string[];
}

/** One shape per statement of `sql`, in order. Throws MaskingError (unparsable_sql) for SQL the parser rejects. */
export function statementShapes(sql: string, options: LineageOptions = {}): StatementShape[] {
  if (sql === "") return [];
  let raw: { stmt?: Node; stmt_location?: number; stmt_len?: number }[];
  try {
    raw = parseSync(sql).stmts ?? [];
  } catch (error) {
    if (!hasSqlDetails(error) && !(error instanceof RangeError)) throw error;
    const message = error instanceof Error ? error.message : String(error);
    throw new MaskingError("unparsable_sql", `cannot parse statement: ${message}`, { cause: error });
  }
  // Byte offsets: a PREPARE's own text is cut out of the UTF-8 bytes.
  const bytes = Buffer.from(sql, "utf8");
  const shapes: StatementShape[] = [];
  for (const r of raw) {
    if (r.stmt === undefined) continue;
    const stmt = r.stmt as unknown as Record<string, Record<string, unknown>>;
    const analysis = analyzeStatement(r.stmt, options);
    const shape: StatementShape = {
      lineage: analysis.lineage,
      uses: analysis.uses,
      predicateColumns: [],
      relations: [],
      storedLineages: [],
      storedColumns: [],
    };
    const prepare = stmt.PrepareStmt;
    if (prepare !== undefined) {
      const start = r.stmt_location ?? 0;
      const text = bytes.toString("utf8", start, r.stmt_len ? start + r.stmt_len : bytes.length);
      shape.prepare = { name: String(prepare.name ?? ""), text };
    }
    if (stmt.DeallocateStmt !== undefined) shape.deallocate = String(stmt.DeallocateStmt.name ?? "");
    if (stmt.DeclareCursorStmt !== undefined) shape.declare = String(stmt.DeclareCursorStmt.portalname ?? "");
    if (stmt.ClosePortalStmt !== undefined) shape.close = String(stmt.ClosePortalStmt.portalname ?? "");
    const copy = stmt.CopyStmt;
    if (copy !== undefined && copy.is_from !== true) shape.copyTo = copyFormat(copy.options as Node[] | undefined);
    const predicates = new Set<string>();
    const relations = new Set<string>();
    collectPredicateColumns(r.stmt, false, predicates, relations);
    shape.predicateColumns = [...predicates];
    shape.relations = [...relations];
    const storedColumns = new Set<string>();
    collectStores(r.stmt, options, shape.storedLineages, storedColumns);
    shape.storedColumns = [...storedColumns];
    shapes.push(shape);
  }
  return shapes;
}

function copyFormat(options: readonly Node[] | undefined): CopyFormat {
  const out: CopyFormat = { format: "text", header: false };
  for (const node of options ?? []) {
    const def = (node as { DefElem?: { defname?: string; arg?: Record<string, Record<string, unknown>> } }).DefElem;
    if (def === undefined) continue;
    const arg = def.arg;
    const text = arg?.String?.sval as string | undefined;
    switch (def.defname) {
      case "format":
        if (text === "csv" || text === "binary" || text === "text") out.format = text;
        break;
      case "delimiter":
        out.delimiter = text;
        break;
      case "null":
        out.null = text;
        break;
      case "quote":
        out.quote = text;
        break;
      case "escape":
        out.escape = text;
        break;
      case "header":
        // HEADER, HEADER true/on/1, HEADER MATCH (COPY FROM only).
        out.header = arg === undefined || arg.Boolean?.boolval === true || (text !== undefined && text !== "false");
        break;
    }
  }
  return out;
}

/** Keys of the parse tree under which a column is used to choose, join, group or order rows, not returned. */
const PREDICATE_KEYS = new Set([
  "whereClause",
  "havingClause",
  "quals",
  "groupClause",
  "sortClause",
  "distinctClause",
  "windowClause",
  "partitionClause",
  "orderClause",
  "usingClause",
]);

function collectPredicateColumns(node: unknown, inside: boolean, out: Set<string>, relations: Set<string>): void {
  if (node === null || typeof node !== "object") return;
  if (Array.isArray(node)) {
    for (const item of node) collectPredicateColumns(item, inside, out, relations);
    return;
  }
  for (const [key, value] of Object.entries(node)) {
    // A FROM item is a { RangeVar }; INSERT, UPDATE, DELETE, MERGE and COPY name theirs as a bare `relation`.
    if (key === "RangeVar" || key === "relation") {
      const range = value as { schemaname?: string; relname?: string };
      if (range.relname !== undefined) {
        relations.add(range.schemaname === undefined ? range.relname : `${range.schemaname}.${range.relname}`);
      }
    }
    if (key === "ColumnRef" && inside) {
      const fields = (value as { fields?: { String?: { sval?: string } }[] }).fields ?? [];
      const last = fields.at(-1)?.String?.sval;
      if (last !== undefined) out.add(last);
      continue;
    }
    if (key === "usingClause" && Array.isArray(value)) {
      // JOIN ... USING (col): plain names.
      for (const item of value as { String?: { sval?: string } }[]) {
        if (item.String?.sval !== undefined) out.add(item.String.sval);
      }
      continue;
    }
    collectPredicateColumns(value, inside || PREDICATE_KEYS.has(key), out, relations);
  }
}

/** Finds every place the statement stores query results or computed values (see StatementShape.storedLineages). */
function collectStores(node: unknown, options: LineageOptions, lineages: OutputLineage[], columns: Set<string>): void {
  if (node === null || typeof node !== "object") return;
  if (Array.isArray(node)) {
    for (const item of node) collectStores(item, options, lineages, columns);
    return;
  }
  for (const [key, value] of Object.entries(node)) {
    const payload = value as Record<string, unknown>;
    switch (key) {
      case "CreateTableAsStmt":
        if (payload.query !== undefined) lineages.push(lineageOfStatement(payload.query as Node, options));
        break;
      case "SelectStmt":
        if (payload.intoClause !== undefined) {
          lineages.push(lineageOfStatement({ SelectStmt: { ...payload, intoClause: undefined } } as Node, options));
        }
        break;
      case "InsertStmt":
        if (payload.selectStmt !== undefined) lineages.push(lineageOfStatement(payload.selectStmt as Node, options));
        break;
      case "UpdateStmt":
        collectColumnRefs(payload.targetList, columns);
        break;
      case "MergeStmt":
        collectColumnRefs(payload.mergeWhenClauses, columns);
        break;
    }
    collectStores(value, options, lineages, columns);
  }
}

function collectColumnRefs(node: unknown, out: Set<string>): void {
  if (node === null || typeof node !== "object") return;
  if (Array.isArray(node)) {
    for (const item of node) collectColumnRefs(item, out);
    return;
  }
  for (const [key, value] of Object.entries(node)) {
    if (key === "ColumnRef") {
      const fields = (value as { fields?: { String?: { sval?: string }; A_Star?: unknown }[] }).fields ?? [];
      const last = fields.at(-1);
      if (last?.String?.sval !== undefined) out.add(last.String.sval);
      else if (last?.A_Star !== undefined) out.add("*");
      continue;
    }
    collectColumnRefs(value, out);
  }
}
