import {
  type ColumnMatcher,
  type ColumnType,
  type CopyFormat,
  createRowMasker,
  DEFAULT_KEEP,
  derivedMask,
  type Hasher,
  type Lineage,
  MASK_STRATEGIES,
  type Mask,
  type MaskedPredicates,
  type MaskRule,
  masksFor,
  type OutputLineage,
  type RowMasker,
  redactText,
  refusalMessage,
  refusedUse,
  type Source,
  type StatementShape,
  statementShapes,
  strictest,
} from "@agentgate/masking";
import { Backend, errorResponse, Frontend } from "@agentgate/wire";
import type { Logger } from "pino";
import type { CatalogColumn, MaskCatalog, Relation } from "./catalog.ts";
import {
  bindResultFormats,
  describeMessage,
  type Field,
  rebuildNoticeFields,
  rowDescriptionFields,
} from "./protocol.ts";

/**
 * What masks a value out of something the analysis cannot see into (an opaque function). A value from a relation
 * the catalog does not know is never masked by guess: its result is withheld with an error (see Unverifiable).
 */
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
  /** Set when the rows' provenance cannot be told: the first row is answered with this error instead. */
  refusal?: MaskRefusal;
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
  detail?: string;
}

/** DDL and what may run it: after it completes (and commits), the catalog is read again. */
const DDL_TAG = /^(CREATE|ALTER|DROP|COMMENT|SECURITY LABEL|IMPORT FOREIGN SCHEMA|REFRESH|DO|CALL|DISCARD)\b/;

const WITHHELD_DETAIL = "The statement ran (with any after it in the same query string); only its result is withheld.";

/** A result whose provenance the gateway cannot tell: refused, never masked by guess (never a made-up value). */
function unverifiable(what: string): MaskRefusal {
  return {
    code: "55000",
    message: `the gateway cannot tell which table ${what} comes from, so it cannot tell which masks apply and withholds the result`,
    detail: WITHHELD_DETAIL,
    hint: "A table created in a transaction not yet committed, or earlier in the same query string, is not yet visible to the gateway's catalog: commit it first, or send the statement on its own.",
  };
}

/** A failure of the gateway's own masking code: reported as the gateway's, never as the target's. */
const INTERNAL: MaskRefusal = {
  code: "XX000",
  message: "internal gateway error: the result could not be masked, so it is withheld",
  detail: WITHHELD_DETAIL,
};

/** The shape of the statement whose results the head of the conversation is: a Query's current one, or a portal's. */
function shapeOf(head: Entry | undefined) {
  return head?.kind === "query"
    ? head.shapes?.[head.index]
    : head?.kind === "execute"
      ? head.portal.statement.shape
      : undefined;
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
  #predicates: MaskedPredicates = "whole-value";
  #entries: Entry[] = [];
  readonly #statements = new Map<string, Statement>();
  readonly #portals = new Map<string, Portal>();
  readonly #prepared = new Map<string, string>();
  readonly #cursors = new Map<string, OutputLineage>();
  #result: Result | undefined;
  #copy: CopyResult | undefined;
  #counts = new Map<string, number>();
  #lastShapes: { sql: string; loads: number; shapes: StatementShape[] } | undefined;
  #maskedColumns = new Map<number, ReadonlySet<string>>();
  #maskedColumnsLoads = -1;
  /** Set while planning when a source is a relation the catalog does not know. */
  #unverifiable: string | undefined;
  /** An error was sent in place of a result: everything up to ReadyForQuery is dropped. */
  #withholding = false;
  /** DDL completed since the last ReadyForQuery outside a transaction: the catalog is stale once it commits. */
  #ddl = false;

  constructor(options: MaskingOptions) {
    this.#o = options;
  }

  /** Masks in force from the latest decision (the policy service filtered them for this principal). */
  useRules(revision: string, rules: readonly MaskRule[], predicates: MaskedPredicates): void {
    if (revision === this.#revision) return;
    this.#revision = revision;
    const checked = rules.map(checkedRule);
    this.#matcher = masksFor(checked.length === 0 ? [] : [...checked, ...STATISTICS_RULES], []);
    this.#predicates = predicates;
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

  /**
   * Whether the catalog must be (re)loaded before `sql` can be planned: it is stale, or the statement names a
   * relation it does not know that no load since the last DDL has looked for (a table created by someone else).
   */
  needsCatalogFor(sql: string): boolean {
    if (!this.active) return false;
    try {
      this.#seekUnknown(this.#shapes(sql));
    } catch {
      // unparsable: the server will reject it too
    }
    return this.#o.catalog.needsLoad;
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
   * of a masked column; a use of a masked value that `maskedPredicates` does not allow: see refusedUse).
   */
  check(type: number, sql: string): MaskRefusal | undefined {
    if (!this.active || (type !== Frontend.Query && type !== Frontend.Parse)) return undefined;
    let shapes: StatementShape[];
    try {
      shapes = this.#shapes(sql);
    } catch {
      return undefined; // the server will reject it too; nothing is returned
    }
    this.#seekUnknown(shapes);
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
      if (this.#predicates !== "allow") {
        const mode = this.#predicates;
        let refusal = undefined as ReturnType<typeof refusedUse>;
        if (shape.uses === "incomplete") {
          // Part of the statement could not be followed: judged by column names alone.
          const used = this.#maskedPredicate(shape);
          if (used !== undefined) refusal = { column: used, clause: "a clause the gateway cannot follow", mode };
        } else refusal = refusedUse(shape.uses, mode, (source) => this.#maskOfUse(source));
        if (refusal !== undefined) return { code: "42501", ...refusalMessage(refusal) };
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

  /**
   * A server message for the client: the message to send (possibly rewritten), or undefined to drop it. Never
   * throws: a result that cannot be masked is answered with an error of the gateway's own (55000 when its
   * provenance cannot be told, XX000 when masking itself failed) and the rest of it, up to ReadyForQuery, dropped.
   */
  received(type: number, message: Buffer): Buffer | undefined {
    if (this.#withholding) return this.#whileWithholding(type, message);
    try {
      return this.#received(type, message);
    } catch (error) {
      if (error instanceof Withheld) return this.#withhold(error.refusal);
      // The error may describe a row's structure, never its values; only its class and code are logged.
      const code = (error as { code?: unknown }).code;
      this.#o.logger.error(
        {
          error: error instanceof Error ? error.name : typeof error,
          code: typeof code === "string" ? code : undefined,
        },
        "masking failed: the result is withheld",
      );
      return this.#withhold(INTERNAL);
    }
  }

  #withhold(refusal: MaskRefusal): Buffer {
    this.#withholding = true;
    this.#endResult();
    return errorResponse({ severity: "ERROR", ...refusal });
  }

  /** After a withheld result: the plan still follows every message, but only session-level ones reach the client. */
  #whileWithholding(type: number, message: Buffer): Buffer | undefined {
    if (type === Backend.DataRow || type === Backend.CopyData) return undefined;
    try {
      this.#received(type, message);
    } catch {
      // what is dropped needs no plan
    }
    this.#endResult();
    if (type === Backend.ReadyForQuery) {
      this.#withholding = false;
      return message;
    }
    return type === Backend.ParameterStatus || type === Backend.NotificationResponse ? message : undefined;
  }

  #received(type: number, message: Buffer): Buffer | undefined {
    switch (type) {
      case Backend.DataRow: {
        const result = this.#result ?? this.#executeResult();
        if (result === undefined) return message;
        if (result.refusal !== undefined) throw new Withheld(result.refusal);
        return result.masker.dataRow(message);
      }
      case Backend.CopyData: {
        const copy = this.#copy;
        if (copy === undefined) return message;
        if (copy.skipHeader) {
          copy.skipHeader = false;
          return message;
        }
        if (copy.masker.passthrough) return message;
        // A binary COPY of masked columns was refused before it ran; its rows are never relayed in clear.
        if (copy.format.format === "binary") throw new Withheld(INTERNAL);
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
        this.#onCopyOut(message);
        return message;
      case Backend.CommandComplete:
      case Backend.EmptyQueryResponse:
      case Backend.PortalSuspended: {
        this.#endResult();
        const head = this.#entries[0];
        if (type === Backend.CommandComplete && this.#isDdl(head, message)) this.#ddl = true;
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
        return this.active && touches ? this.#redactNotice(message) : message;
      }
      case Backend.NoticeResponse: {
        const head = this.#entries[0];
        const touches = head?.kind === "query" || head?.kind === "execute" ? head.touches : false;
        return this.active && touches ? this.#redactNotice(message) : message;
      }
      case Backend.ReadyForQuery: {
        this.#endResult();
        // DDL is visible to the catalog's own connection once committed: outside a transaction block.
        if (this.#ddl && message[5] === 0x49 /* I */) {
          this.#ddl = false;
          this.#o.catalog.stale();
        }
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

  /**
   * The statement's shapes; check() and sent() ask for the same text one after the other, so the last is kept (as
   * long as the catalog its star expansions were read from is the same).
   */
  #shapes(sql: string): StatementShape[] {
    const loads = this.#o.catalog.loads;
    if (this.#lastShapes?.sql === sql && this.#lastShapes.loads === loads) return this.#lastShapes.shapes;
    const shapes = statementShapes(sql, {
      columnsOf: this.#o.catalog.columnsOf,
      prepared: this.#prepared,
      cursors: this.#cursors,
    });
    this.#lastShapes = { sql, loads, shapes };
    return shapes;
  }

  /** Names of relations the catalog does not know: the next load looks for them (once until the next DDL). */
  #seekUnknown(shapes: readonly StatementShape[]): void {
    for (const shape of shapes) {
      for (const written of shape.relations) {
        if (this.#o.catalog.relationsNamed(written).length === 0) this.#o.catalog.seek(written);
      }
    }
  }

  /** Whether a completed command may have changed what the catalog holds. */
  #isDdl(head: Entry | undefined, message: Buffer): boolean {
    const tag = message.toString("latin1", 5, message.length - 1);
    if (DDL_TAG.test(tag)) return true;
    // CREATE TABLE AS, SELECT INTO and CREATE MATERIALIZED VIEW complete as "SELECT n".
    if (!tag.startsWith("SELECT")) return false;
    const shape = shapeOf(head);
    return shape !== undefined && shape.storedLineages.length > 0;
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

  /**
   * The mask of a value a statement uses (compares, orders...). A relation the catalog does not know (one made in
   * a transaction not yet committed) holds no masked values: they cannot be stored where no mask applies, and a
   * temporary view over masked columns is refused. Results read from it are refused all the same (see #plan).
   */
  #maskOfUse(source: Source): Mask | undefined {
    if (this.#o.catalog.relationsNamed(source.relation).length === 0) return undefined;
    return this.#maskOfSources([source], 0);
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
    this.#endResult();
    if (fields === undefined) {
      // Rows of unknown shape: no plan can be made, so none of them is relayed, in clear or made up.
      this.#o.logger.warn("rows without a known description: the result is withheld");
      this.#result = { masker: createRowMasker([], [], this.#o.hasher), labels: [], refusal: INTERNAL };
      return this.#result;
    }
    this.#result = this.#plan(fields, portal.statement.shape?.lineage ?? "opaque");
    return this.#result;
  }

  #plan(fields: readonly Field[], lineage: OutputLineage | undefined): Result {
    this.#unverifiable = undefined;
    const aligned = this.#align(lineage, fields.length);
    let refusal: MaskRefusal | undefined;
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
          // Not in the catalog (a table of an uncommitted transaction, or created in the same query string): the
          // next statement reads the catalog again (once), and these rows are refused rather than masked by guess.
          this.#o.catalog.seek(field.tableOid);
          refusal ??= unverifiable(`result column "${field.name}" (relation OID ${field.tableOid})`);
        } else {
          mask = this.#maskOfColumn(column, 0);
          label = `${column.relation.schema}.${column.relation.name}.${column.column}`;
        }
      } else {
        mask = aligned === "opaque" ? FAIL_CLOSED : this.#maskOfSources(aligned(i), 0);
        if (mask === undefined && textFamily(types[i]!)) mask = DETECT_MASK;
        if (this.#unverifiable !== undefined) {
          refusal ??= unverifiable(`result column "${field.name}" (computed from "${this.#unverifiable}")`);
        }
      }
      plan.push(mask);
      labels.push(label);
    }
    const result: Result = { masker: createRowMasker(plan, types, this.#o.hasher), labels };
    if (refusal !== undefined) result.refusal = refusal;
    return result;
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
        // A relation the catalog does not know (yet): it may hold anything. Results refuse it (see #plan); checks
        // before a statement runs take it as masked.
        this.#o.catalog.seek(source.relation);
        this.#unverifiable ??= source.relation;
        return FAIL_CLOSED;
      }
      // A value computed from a masked column (or a whole row) is redacted whole, never partial or hashed.
      const derived = "wholeRow" in source || source.derived === true;
      for (const relation of relations) {
        if ("wholeRow" in source) {
          for (const column of relation.columns) {
            if (column !== undefined) {
              mask = strictest(mask, derivedMask(this.#maskOfColumn({ relation, column }, depth + 1)));
            }
          }
        } else if (relation.columns.includes(source.column)) {
          const own = this.#maskOfColumn({ relation, column: source.column }, depth + 1);
          mask = strictest(mask, derived ? derivedMask(own) : own);
        }
      }
    }
    return mask;
  }

  /**
   * A catalog column's mask: its own rule, the rules of the same column of every table it is a partition or
   * inheritance child of and of every partition or child of it (whose rows a read of it returns: the parent's own
   * rows are then masked too), and for a view the masks of what the view column derives from.
   */
  #maskOfColumn({ relation, column }: CatalogColumn, depth: number): Mask | undefined {
    let mask = this.#matcher.strategyFor(relation.schema, relation.name, column);
    for (const kin of [relation.ancestors, relation.descendants]) {
      for (const other of kin) {
        if (other.columns.includes(column)) {
          mask = strictest(mask, this.#matcher.strategyFor(other.schema, other.name, column));
        }
      }
    }
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
    if (this.#maskedColumnsLoads !== this.#o.catalog.loads) {
      this.#maskedColumns.clear(); // OIDs are kept across loads; columns and parents may not be
      this.#maskedColumnsLoads = this.#o.catalog.loads;
    }
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

  /** Per COPY column its mask; `width` is the column count CopyOutResponse gives (else the lineage's). */
  #copyPlan(lineage: OutputLineage, width?: number): (Mask | undefined)[] {
    const count = width ?? lineageWidth(lineage, this.#o.catalog.columnsOf);
    const aligned = this.#align(lineage, count);
    if (aligned === "opaque") return Array.from({ length: Math.max(count, 1) }, () => FAIL_CLOSED);
    return Array.from({ length: Math.max(count, 1) }, (_, i) => this.#maskOfSources(aligned(i), 0));
  }

  /** CopyOutResponse: int8 overall format, int16 column count, then a format per column. */
  #onCopyOut(message: Buffer): void {
    if (!this.active) return;
    const head = this.#entries[0];
    const shape = shapeOf(head);
    this.#endResult();
    if (shape === undefined) throw new Withheld(unverifiable("what COPY copies"));
    const width = message.readInt16BE(6);
    const format = shape.copyTo ?? { format: "text", header: false };
    this.#unverifiable = undefined;
    const plan = this.#copyPlan(shape.lineage, width);
    if (this.#unverifiable !== undefined)
      throw new Withheld(unverifiable(`"${this.#unverifiable}", which COPY copies,`));
    const labels = plan.map((_, i) => `copy column ${i + 1}`);
    const masker = createRowMasker(
      plan,
      plan.map(() => TEXT),
      this.#o.hasher,
    );
    this.#copy = { masker, labels, format, skipHeader: format.format === "csv" && format.header };
  }

  // ---- errors and notices ------------------------------------------------------------------------------------------

  /**
   * Error and notice texts may quote values (a failed cast echoes its input; a unique violation shows the key). For
   * a statement that touches a masked column, quoted values in the message are replaced, the detail and context
   * dropped and the content detectors run over what is left; other statements' errors and notices go unchanged.
   */
  #redactNotice(message: Buffer): Buffer {
    return rebuildNoticeFields(message, (code, text) => {
      if (code === 0x44 /* D detail */) return "(detail withheld: it may show masked values)";
      if (code === 0x57 /* W context */ || code === 0x71 /* q internal query */) return undefined;
      if (code === 0x4d /* M message */) text = text.replace(/"(?:[^"]|"")*"/g, '"****"');
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

/** Thrown while planning a result that must not be relayed: received() answers it with the refusal instead. */
class Withheld extends Error {
  override readonly name = "Withheld";
  constructor(readonly refusal: MaskRefusal) {
    super(refusal.message);
  }
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
