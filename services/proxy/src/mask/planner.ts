import {
  type ColumnMatcher,
  type ColumnType,
  type CopyFormat,
  createRowMasker,
  DEFAULT_KEEP,
  type Hasher,
  type Lineage,
  MASK_STRATEGIES,
  type Mask,
  type MaskRule,
  masksFor,
  type OutputLineage,
  type RowMasker,
  redactText,
  type Source,
  type StatementShape,
  statementShapes,
  strictest,
} from "@agentgate/masking";
import { Backend, Frontend } from "@agentgate/wire";
import type { Logger } from "pino";
import type { CatalogColumn, MaskCatalog, Relation } from "./catalog.ts";
import {
  bindResultFormats,
  describeMessage,
  type Field,
  rebuildNoticeFields,
  rowDescriptionFields,
} from "./protocol.ts";

/** What masks a value nobody can vouch for: an unknown relation, an opaque function. */
const FAIL_CLOSED: Mask = Object.freeze({ strategy: "redact", keep: 0, rule: "(unverifiable)" });
const DETECT_MASK: Mask = Object.freeze({ strategy: "detect", keep: 0, rule: "" });

/**
 * Catalog views that show column values (statistics: most common values, histogram bounds): whoever has any mask
 * sees them as NULL, since they would show masked columns' values.
 */
const STATISTICS_RULES: readonly MaskRule[] = [
  "pg_catalog.pg_stats*.most_common_*",
  "pg_catalog.pg_stats*.histogram_bounds",
  "pg_catalog.pg_stats*.elem_count_histogram",
  "pg_catalog.pg_stats*.range_*",
  "pg_catalog.pg_statistic*.stavalues*",
  "pg_catalog.pg_statistic_ext_data.stxd*",
].map((column) => ({ column, strategy: "null" as const }));

const TEXT: ColumnType = { oid: 25, format: 0 };

interface Statement {
  shape: StatementShape | undefined;
  fields: Field[] | undefined;
}

interface Portal {
  statement: Statement;
  formats: number[];
  fields: Field[] | undefined;
}

type Entry =
  | { kind: "query"; shapes: StatementShape[] | undefined; index: number; touches: boolean }
  | { kind: "describe"; statement?: Statement; portal?: Portal; injected: boolean }
  | { kind: "execute"; portal: Portal; touches: boolean }
  | { kind: "sync" };

interface Result {
  masker: RowMasker;
  labels: string[];
}

interface CopyResult extends Result {
  format: CopyFormat;
  skipHeader: boolean;
}

export interface MaskingOptions {
  catalog: MaskCatalog;
  hasher: Hasher;
  logger: Logger;
}

/** A refusal the planner asks the session to raise instead of running a statement. */
export interface MaskRefusal {
  code: string;
  message: string;
  hint?: string;
}

/**
 * Masks one session's results by provenance. The session tells it the masks in force (with each decision), every
 * client message it forwards (`sent`, which may add a Describe of its own before an Execute) and every server
 * message meant for the client (`received`, which returns the message to send, rewritten or not, or undefined to
 * drop a response to the planner's own Describe). Columns are labelled by RowDescription (table OID and column
 * number through the catalog, views through their definitions) and, where the server cannot tell, by the lineage
 * read off the statement's parse tree.
 */
export class SessionMasking {
  readonly #o: MaskingOptions;
  #revision: string | undefined;
  #matcher: ColumnMatcher = masksFor([], []);
  #refusePredicates = false;
  #entries: Entry[] = [];
  readonly #statements = new Map<string, Statement>();
  readonly #portals = new Map<string, Portal>();
  readonly #prepared = new Map<string, string>();
  readonly #cursors = new Map<string, OutputLineage>();
  #result: Result | undefined;
  #copy: CopyResult | undefined;
  #counts = new Map<string, number>();
  #lastShapes: { sql: string; shapes: StatementShape[] } | undefined;
  #maskedColumns = new Map<number, ReadonlySet<string>>();

  constructor(options: MaskingOptions) {
    this.#o = options;
  }

  /** Masks in force from the latest decision (the policy service filtered them for this principal). */
  useRules(revision: string, rules: readonly MaskRule[], refusePredicates: boolean): void {
    if (revision === this.#revision) return;
    this.#revision = revision;
    const checked = rules.map(checkedRule);
    this.#matcher = masksFor(checked.length === 0 ? [] : [...checked, ...STATISTICS_RULES], []);
    this.#refusePredicates = refusePredicates;
    this.#maskedColumns.clear();
  }

  /** Whether anything is masked for this principal: otherwise nothing here needs to run. */
  get active(): boolean {
    return !this.#matcher.empty;
  }

  /** Whether the catalog must be (re)loaded before the next statement can be planned. */
  get needsCatalog(): boolean {
    return this.active && this.#o.catalog.needsLoad;
  }

  /** Counts of masked cells per column since the last call (for a statement's audit record). */
  takeCounts(): Record<string, bigint> {
    if (this.#counts.size === 0) return {};
    const out: Record<string, bigint> = {};
    for (const [label, n] of this.#counts) out[label] = BigInt(n);
    this.#counts = new Map();
    return out;
  }

  /**
   * Checks a statement before it is forwarded: a refusal when it would leak what masking cannot hide (a binary COPY
   * of a masked column; with the predicate switch on, a masked column used to filter, join, group or order).
   */
  check(type: number, sql: string): MaskRefusal | undefined {
    if (!this.active || (type !== Frontend.Query && type !== Frontend.Parse)) return undefined;
    let shapes: StatementShape[];
    try {
      shapes = this.#shapes(sql);
    } catch {
      return undefined; // the server will reject it too; nothing is returned
    }
    for (const shape of shapes) {
      if (shape.copyTo?.format === "binary" && this.#copyPlan(shape.lineage).some((m) => m !== undefined)) {
        return {
          code: "42501",
          message: "permission denied: COPY in binary format cannot mask the masked columns it would copy",
          hint: "Use COPY in text or CSV format.",
        };
      }
      const stored = this.#storedMasked(shape);
      if (stored !== undefined) {
        return {
          code: "42501",
          message: `permission denied: this statement would store values of the masked column "${stored}" where they are not masked`,
          hint: "Masked values may be read (masked) but not copied into other tables.",
        };
      }
      if (this.#refusePredicates) {
        const used = this.#maskedPredicate(shape);
        if (used !== undefined) {
          return {
            code: "42501",
            message: `permission denied: the masked column "${used}" may not be used to filter, join, group or order rows`,
            hint: "Masked values must not be inferable from which rows come back.",
          };
        }
      }
    }
    return undefined;
  }

  /**
   * A client message on its way upstream; returns the messages to send in its place (a Describe of the planner's
   * own before an Execute), or undefined to send it as it is. Every message is followed, masks or not, so the plan
   * for each response is known if masks arrive with a later decision.
   */
  sent(type: number, message: Buffer): Buffer[] | undefined {
    const active = this.active;
    switch (type) {
      case Frontend.Query: {
        let shapes: StatementShape[] | undefined = [];
        if (active) {
          try {
            shapes = this.#shapes(cstring(message, 5).text);
          } catch {
            shapes = undefined;
          }
          for (const shape of shapes ?? []) this.#remember(shape);
        }
        this.#entries.push({ kind: "query", shapes, index: 0, touches: active && this.#touches(shapes) });
        return undefined;
      }
      case Frontend.FunctionCall:
        this.#entries.push({ kind: "query", shapes: undefined, index: 0, touches: active });
        return undefined;
      case Frontend.Parse: {
        const name = cstring(message, 5);
        let shape: StatementShape | undefined;
        if (active) {
          try {
            const shapes = this.#shapes(cstring(message, name.end).text);
            shape = shapes.length === 1 ? shapes[0] : undefined;
            if (shape !== undefined) this.#remember(shape);
          } catch {
            shape = undefined;
          }
        }
        this.#statements.set(name.text, { shape, fields: undefined });
        return undefined;
      }
      case Frontend.Bind: {
        const portal = cstring(message, 5);
        const statement = cstring(message, portal.end);
        this.#portals.set(portal.text, {
          statement: this.#statements.get(statement.text) ?? { shape: undefined, fields: undefined },
          formats: bindResultFormats(message, statement.end),
          fields: undefined,
        });
        return undefined;
      }
      case Frontend.Describe: {
        const name = cstring(message, 6).text;
        this.#entries.push(
          message[5] === 0x53 /* S */
            ? { kind: "describe", statement: this.#statements.get(name), injected: false }
            : { kind: "describe", portal: this.#portals.get(name), injected: false },
        );
        return undefined;
      }
      case Frontend.Execute: {
        const entry = this.#executeOf(message);
        const portal = entry.portal;
        const known = portal.fields !== undefined || portal.statement.fields !== undefined;
        const describing = this.#entries.some((e) => e.kind === "describe" && e.portal === portal);
        if (active && !known && !describing) {
          // The client did not ask what the portal returns; the planner must know, so it asks, and drops the answer.
          this.#entries.push({ kind: "describe", portal, injected: true }, entry);
          return [describeMessage("P", cstring(message, 5).text), message];
        }
        this.#entries.push(entry);
        return undefined;
      }
      case Frontend.Sync:
        this.#entries.push({ kind: "sync" });
        return undefined;
      case Frontend.Close: {
        const name = cstring(message, 6).text;
        if (message[5] === 0x53) this.#statements.delete(name);
        else this.#portals.delete(name);
        return undefined;
      }
      default:
        return undefined;
    }
  }

  /** A server message for the client: the message to send (possibly rewritten), or undefined to drop it. */
  received(type: number, message: Buffer): Buffer | undefined {
    switch (type) {
      case Backend.DataRow: {
        const result = this.#result ?? this.#executeResult();
        if (result === undefined) return message;
        return result.masker.dataRow(message);
      }
      case Backend.CopyData: {
        const copy = this.#copy;
        if (copy === undefined) return message;
        if (copy.skipHeader) {
          copy.skipHeader = false;
          return message;
        }
        if (copy.format.format === "binary") return undefined; // refused before; never relayed in clear
        const line = message.subarray(5);
        const masked =
          copy.format.format === "csv"
            ? copy.masker.copyCsvRow(line, copyOptions(copy.format))
            : copy.masker.copyTextRow(line, copyOptions(copy.format));
        if (masked === line) return message;
        if (masked.length === 0) return undefined; // a row nothing can be said about is not relayed
        return frame(Backend.CopyData, masked);
      }
      case Backend.RowDescription:
        return this.#onRowDescription(message);
      case Backend.NoData: {
        const head = this.#entries[0];
        if (head?.kind === "describe") {
          this.#entries.shift();
          if (head.injected) return undefined;
        }
        return message;
      }
      case Backend.CopyOutResponse:
        this.#onCopyOut();
        return message;
      case Backend.CommandComplete:
      case Backend.EmptyQueryResponse:
      case Backend.PortalSuspended: {
        this.#endResult();
        const head = this.#entries[0];
        if (head?.kind === "query") head.index++;
        else if (head?.kind === "execute") this.#entries.shift();
        return message;
      }
      case Backend.ErrorResponse: {
        this.#endResult();
        const head = this.#entries[0];
        const touches = head?.kind === "query" || head?.kind === "execute" ? head.touches : true;
        // In the extended protocol the server skips to the next Sync.
        if (head !== undefined && head.kind !== "query") {
          while (this.#entries.length > 0 && this.#entries[0]!.kind !== "sync") this.#entries.shift();
        }
        return this.active ? this.#redactNotice(message, touches) : message;
      }
      case Backend.NoticeResponse: {
        const head = this.#entries[0];
        const touches = head?.kind === "query" || head?.kind === "execute" ? head.touches : false;
        return this.active ? this.#redactNotice(message, touches) : message;
      }
      case Backend.ReadyForQuery: {
        this.#endResult();
        // Everything up to and including the Sync or Query this answers is done.
        while (this.#entries.length > 0) {
          const e = this.#entries.shift()!;
          if (e.kind === "sync" || e.kind === "query") break;
        }
        return message;
      }
      default:
        return message;
    }
  }

  // ---- statements ------------------------------------------------------------------------------------------------

  /** The statement's shapes; check() and sent() ask for the same text one after the other, so the last is kept. */
  #shapes(sql: string): StatementShape[] {
    if (this.#lastShapes?.sql === sql) return this.#lastShapes.shapes;
    const shapes = statementShapes(sql, {
      columnsOf: this.#o.catalog.columnsOf,
      prepared: this.#prepared,
      cursors: this.#cursors,
    });
    this.#lastShapes = { sql, shapes };
    return shapes;
  }

  /** SQL-level session state the next statements' lineage depends on. */
  #remember(shape: StatementShape): void {
    // A PREPARE, DECLARE, DEALLOCATE or CLOSE changes what later statements return: their shapes are computed anew.
    if (shape.prepare || shape.declare !== undefined || shape.deallocate !== undefined || shape.close !== undefined) {
      this.#lastShapes = undefined;
    }
    if (shape.prepare !== undefined) this.#prepared.set(shape.prepare.name, shape.prepare.text);
    if (shape.deallocate !== undefined) {
      if (shape.deallocate === "") this.#prepared.clear();
      else this.#prepared.delete(shape.deallocate);
    }
    if (shape.declare !== undefined) this.#cursors.set(shape.declare, shape.lineage);
    if (shape.close !== undefined) {
      if (shape.close === "") this.#cursors.clear();
      else this.#cursors.delete(shape.close);
    }
  }

  #executeOf(message: Buffer): Extract<Entry, { kind: "execute" }> {
    const name = cstring(message, 5).text;
    const portal = this.#portals.get(name) ?? {
      statement: { shape: undefined, fields: undefined },
      formats: [],
      fields: undefined,
    };
    return {
      kind: "execute",
      portal,
      touches: this.#touches(portal.statement.shape ? [portal.statement.shape] : undefined),
    };
  }

  /** Whether statements name a relation with a masked column (their errors may then quote masked values). */
  #touches(shapes: readonly StatementShape[] | undefined): boolean {
    if (shapes === undefined) return true;
    for (const shape of shapes) {
      if (shape.lineage === "opaque") return true;
      for (const written of shape.relations) {
        const relations = this.#o.catalog.relationsNamed(written);
        if (relations.length === 0) return true;
        if (relations.some((r) => this.#maskedColumnsOf(r).size > 0)) return true;
      }
    }
    return false;
  }

  /** A masked column whose values the statement would store elsewhere (or "(unverifiable)"), else undefined. */
  #storedMasked(shape: StatementShape): string | undefined {
    for (const lineage of shape.storedLineages) {
      const width = lineageWidth(lineage, this.#o.catalog.columnsOf);
      const aligned = this.#align(lineage, width);
      if (aligned === "opaque") return FAIL_CLOSED.rule;
      for (let i = 0; i < Math.max(width, 1); i++) {
        const mask = this.#maskOfSources(aligned(i), 0);
        if (mask !== undefined) return mask.rule;
      }
    }
    if (shape.storedColumns.length > 0) {
      for (const written of shape.relations) {
        for (const relation of this.#o.catalog.relationsNamed(written)) {
          const masked = this.#maskedColumnsOf(relation);
          if (masked.size === 0) continue;
          const used = shape.storedColumns.find((c) => c === "*" || masked.has(c));
          if (used !== undefined) return used === "*" ? [...masked][0] : used;
        }
      }
    }
    return undefined;
  }

  #maskedPredicate(shape: StatementShape): string | undefined {
    if (shape.predicateColumns.length === 0) return undefined;
    for (const written of shape.relations) {
      for (const relation of this.#o.catalog.relationsNamed(written)) {
        const masked = this.#maskedColumnsOf(relation);
        const used = shape.predicateColumns.find((c) => masked.has(c));
        if (used !== undefined) return used;
      }
    }
    return undefined;
  }

  // ---- plans -------------------------------------------------------------------------------------------------------

  #onRowDescription(message: Buffer): Buffer | undefined {
    const head = this.#entries[0];
    if (head?.kind === "describe") {
      this.#entries.shift();
      if (this.active) {
        const fields = rowDescriptionFields(message);
        if (head.statement !== undefined) head.statement.fields = fields;
        if (head.portal !== undefined) head.portal.fields = fields;
      }
      return head.injected ? undefined : message;
    }
    if (!this.active) return message;
    if (head?.kind === "query") {
      this.#endResult();
      const shape = head.shapes?.[head.index];
      this.#result = this.#plan(rowDescriptionFields(message), head.shapes === undefined ? "opaque" : shape?.lineage);
    }
    return message;
  }

  /** The plan for rows an Execute returns, from what its portal (or statement) was described as. */
  #executeResult(): Result | undefined {
    if (!this.active) return undefined;
    const head = this.#entries[0];
    if (head?.kind !== "execute") return undefined;
    const portal = head.portal;
    let fields = portal.fields;
    if (fields === undefined && portal.statement.fields !== undefined) {
      fields = portal.statement.fields.map((f, i) => ({ ...f, format: formatOf(portal.formats, i) }));
    }
    if (fields === undefined) {
      // Rows of unknown shape: no plan can be made, so nothing of them is relayed in clear.
      this.#o.logger.warn("rows without a known description: every cell is masked");
      fields = [];
    }
    this.#endResult();
    this.#result = this.#plan(fields, portal.statement.shape?.lineage ?? "opaque");
    return this.#result;
  }

  #plan(fields: readonly Field[], lineage: OutputLineage | undefined): Result {
    const aligned = this.#align(lineage, fields.length);
    const plan: (Mask | undefined)[] = [];
    const labels: string[] = [];
    const types: ColumnType[] = [];
    for (const [i, field] of fields.entries()) {
      types.push({
        oid: field.typeOid,
        format: field.format,
        textLike: field.typeOid >= 16384 ? this.#o.catalog.textLike(field.typeOid) : undefined,
      });
      let mask: Mask | undefined;
      let label = field.name;
      if (field.tableOid !== 0) {
        const column = this.#o.catalog.column(field.tableOid, field.attnum);
        if (column === undefined) {
          this.#o.catalog.stale();
          mask = FAIL_CLOSED;
        } else {
          mask = this.#maskOfColumn(column, 0);
          label = `${column.relation.schema}.${column.relation.name}.${column.column}`;
        }
      } else {
        mask = aligned === "opaque" ? FAIL_CLOSED : this.#maskOfSources(aligned(i), 0);
        if (mask === undefined && textFamily(types[i]!)) mask = DETECT_MASK;
      }
      plan.push(mask);
      labels.push(label);
    }
    // Rows of unknown shape (no description): every cell of them is withheld.
    return { masker: fields.length === 0 ? failClosedMasker() : createRowMasker(plan, types, this.#o.hasher), labels };
  }

  /** Sources of output column i, from the lineage: by position when it lines up, else all of them. */
  #align(lineage: OutputLineage | undefined, count: number): ((i: number) => Source[]) | "opaque" {
    if (lineage === undefined || lineage === "opaque") return "opaque";
    const expanded: (Source[] | undefined)[] = [];
    let all: Source[] = [];
    let exact = true;
    for (const entry of lineage) {
      const sources = this.#sourcesOf(entry);
      all = all.concat(sources.flat());
      if (entry.kind === "columns") exact = false;
      else expanded.push(...sources);
    }
    if (exact && expanded.length === count) return (i) => expanded[i] ?? all;
    return () => all;
  }

  /** Per output column, the sources one lineage entry stands for (a star expands to its relation's columns). */
  #sourcesOf(entry: Lineage): Source[][] {
    if (entry.kind === "column") return [entry.sources];
    if (entry.kind === "columns") return [entry.sources];
    const columns = this.#o.catalog.columnsOf(entry.relation);
    if (columns === undefined) return [[{ relation: entry.relation, wholeRow: true }]];
    const except = new Set(entry.except ?? []);
    return columns.filter((c) => !except.has(c)).map((column) => [{ relation: entry.relation, column }]);
  }

  #maskOfSources(sources: readonly Source[], depth: number): Mask | undefined {
    let mask: Mask | undefined;
    for (const source of sources) {
      const relations = this.#o.catalog.relationsNamed(source.relation);
      if (relations.length === 0) {
        // A relation the catalog does not know (yet): it may hold anything.
        this.#o.catalog.stale();
        return FAIL_CLOSED;
      }
      for (const relation of relations) {
        if ("wholeRow" in source) {
          for (const column of relation.columns) {
            if (column !== undefined) mask = strictest(mask, this.#maskOfColumn({ relation, column }, depth + 1));
          }
        } else if (relation.columns.includes(source.column)) {
          mask = strictest(mask, this.#maskOfColumn({ relation, column: source.column }, depth + 1));
        }
      }
    }
    return mask;
  }

  /** A catalog column's mask: its own rule, and for a view the masks of what the view column derives from. */
  #maskOfColumn({ relation, column }: CatalogColumn, depth: number): Mask | undefined {
    let mask = this.#matcher.strategyFor(relation.schema, relation.name, column);
    if (relation.kind !== "v" && relation.kind !== "m") return mask;
    if (depth > 16) return FAIL_CLOSED; // views of views beyond reason
    const lineage = this.#o.catalog.viewLineage(relation);
    const aligned = this.#align(lineage, relation.columns.filter((c) => c !== undefined).length);
    if (aligned === "opaque") return strictest(mask, FAIL_CLOSED);
    const index = relation.columns.filter((c) => c !== undefined).indexOf(column);
    mask = strictest(mask, this.#maskOfSources(aligned(index), depth + 1));
    return mask;
  }

  #maskedColumnsOf(relation: Relation): ReadonlySet<string> {
    let set = this.#maskedColumns.get(relation.oid);
    if (set === undefined) {
      set = new Set(
        relation.columns.filter(
          (c): c is string => c !== undefined && this.#maskOfColumn({ relation, column: c }, 0) !== undefined,
        ),
      );
      this.#maskedColumns.set(relation.oid, set);
    }
    return set;
  }

  // ---- COPY --------------------------------------------------------------------------------------------------------

  #copyPlan(lineage: OutputLineage): (Mask | undefined)[] {
    const count = lineageWidth(lineage, this.#o.catalog.columnsOf);
    const aligned = this.#align(lineage, count);
    if (aligned === "opaque") return [FAIL_CLOSED];
    return Array.from({ length: Math.max(count, 1) }, (_, i) => this.#maskOfSources(aligned(i), 0));
  }

  #onCopyOut(): void {
    if (!this.active) return;
    const head = this.#entries[0];
    const shape =
      head?.kind === "query"
        ? head.shapes?.[head.index]
        : head?.kind === "execute"
          ? head.portal.statement.shape
          : undefined;
    const format = shape?.copyTo ?? { format: "text", header: false };
    const plan = shape === undefined ? [FAIL_CLOSED] : this.#copyPlan(shape.lineage);
    const labels = plan.map((_, i) => `copy column ${i + 1}`);
    const masker =
      shape === undefined || shape.lineage === "opaque"
        ? failClosedMasker()
        : createRowMasker(
            plan,
            plan.map(() => TEXT),
            this.#o.hasher,
          );
    this.#endResult();
    this.#copy = { masker, labels, format, skipHeader: format.format === "csv" && format.header };
  }

  // ---- errors and notices ------------------------------------------------------------------------------------------

  /**
   * Error and notice texts may quote values (a failed cast echoes its input; a unique violation shows the key). For
   * a statement that touches a masked column, quoted values in the message are replaced and the detail and context
   * dropped; the content detectors run over every text either way.
   */
  #redactNotice(message: Buffer, touches: boolean): Buffer {
    return rebuildNoticeFields(message, (code, text) => {
      if (touches) {
        if (code === 0x44 /* D detail */) return "(detail withheld: it may show masked values)";
        if (code === 0x57 /* W context */ || code === 0x71 /* q internal query */) return undefined;
        if (code === 0x4d /* M message */) text = text.replace(/"(?:[^"]|"")*"/g, '"****"');
      }
      if (code === 0x4d || code === 0x44 || code === 0x48 /* H hint */ || code === 0x57) return redactText(text).text;
      return text;
    });
  }

  /** A result set ended: its masked-cell counts go to the statement's tally. */
  #endResult(): void {
    if (this.#result !== undefined) this.#count(this.#result);
    if (this.#copy !== undefined) this.#count(this.#copy);
    this.#result = undefined;
    this.#copy = undefined;
  }

  #count(result: Result): void {
    const { masked } = result.masker;
    for (let i = 0; i < masked.length; i++) {
      const n = masked[i]!;
      if (n === 0) continue;
      const label = result.labels[i] ?? `column ${i + 1}`;
      this.#counts.set(label, (this.#counts.get(label) ?? 0) + n);
    }
    (result.masker.masked as number[]).fill(0);
  }
}

/** A rule as it came over the wire: a strategy this proxy does not know is applied as redact (fail closed). */
function checkedRule(rule: MaskRule): MaskRule {
  const strategy = (MASK_STRATEGIES as readonly string[]).includes(rule.strategy) ? rule.strategy : "redact";
  if (strategy === "partial") return { column: rule.column, strategy, keep: rule.keep || DEFAULT_KEEP };
  return { column: rule.column, strategy };
}

function formatOf(formats: readonly number[], i: number): number {
  if (formats.length === 0) return 0;
  if (formats.length === 1) return formats[0]!;
  return formats[i] ?? 0;
}

function textFamily(type: ColumnType): boolean {
  return type.format === 0 && (type.oid === 25 || type.oid === 1043 || type.oid === 1042 || type.textLike === true);
}

function lineageWidth(lineage: OutputLineage, columnsOf: (r: string) => readonly string[] | undefined): number {
  if (lineage === "opaque") return 0;
  let n = 0;
  for (const entry of lineage) {
    if (entry.kind === "star") {
      const except = new Set(entry.except ?? []);
      n += (columnsOf(entry.relation) ?? []).filter((c) => !except.has(c)).length;
    } else n++;
  }
  return n;
}

function copyOptions(format: CopyFormat): { delimiter?: string; null?: string; quote?: string; escape?: string } {
  const out: { delimiter?: string; null?: string; quote?: string; escape?: string } = {};
  if (format.delimiter !== undefined) out.delimiter = format.delimiter;
  if (format.null !== undefined) out.null = format.null;
  if (format.quote !== undefined) out.quote = format.quote;
  if (format.escape !== undefined) out.escape = format.escape;
  return out;
}

/** For rows nothing can be said about: every cell of a DataRow becomes NULL, every COPY row is dropped. */
function failClosedMasker(): RowMasker {
  const masked: number[] = [0];
  return {
    passthrough: false,
    masked,
    dataRow(message) {
      const count = message.readUInt16BE(5);
      masked[0]! += count;
      const out = Buffer.alloc(7 + count * 4, 0xff);
      out[0] = Backend.DataRow;
      out.writeUInt32BE(out.length - 1, 1);
      out.writeUInt16BE(count, 5);
      return out;
    },
    copyTextRow: () => Buffer.alloc(0),
    copyCsvRow: () => Buffer.alloc(0),
  };
}

function frame(type: number, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + payload.length);
  out[0] = type;
  out.writeUInt32BE(4 + payload.length, 1);
  payload.copy(out, 5);
  return out;
}

function cstring(message: Buffer, offset: number): { text: string; end: number } {
  const end = message.indexOf(0, offset);
  if (end < 0) return { text: "", end: message.length };
  return { text: message.toString("utf8", offset, end), end: end + 1 };
}
