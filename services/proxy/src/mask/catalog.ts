import type { ConnectionOptions } from "node:tls";
import type { Target } from "@agentgate/config";
import { type OutputLineage, outputLineage } from "@agentgate/masking";
import type { Logger } from "pino";
import { targetClient } from "../target-client.ts";

/** A table, view or other relation whose columns can be read. */
export interface Relation {
  oid: number;
  /**
   * The schema as mask rules name it: for a temporary table "pg_temp" (the name PostgreSQL gives every session's own
   * temporary schema), so `public.t.c` never matches a temporary table t while `pg_temp.t.c` and `*.t.c` do.
   */
  schema: string;
  /** The schema as the catalog names it (pg_temp_3 for a temporary table), for names written so qualified. */
  namespace: string;
  name: string;
  /** pg_class.relkind: r table, p partitioned table, v view, m materialized view, f foreign table. */
  kind: string;
  temporary: boolean;
  /** Column names by attnum (index 0 unused); dropped columns are holes. */
  columns: (string | undefined)[];
  /** View definition as pg_get_viewdef gives it with an empty search_path (names schema-qualified). */
  definition: string | undefined;
  /**
   * Every table this one is a partition or inheritance child of, nearest first (pg_inherits, followed up). A rule on
   * an ancestor's column covers the column of the same name here: attnums may differ, names cannot.
   */
  ancestors: Relation[];
  /**
   * Every partition and inheritance child of this table, at every level. Reading a table reads its children's rows
   * too (unless ONLY), so a rule on a child's column covers the column of the same name here.
   */
  descendants: Relation[];
}

/** A catalog column: where a value comes from, named as mask rules name it. */
export interface CatalogColumn {
  relation: Relation;
  column: string;
}

// Every session's temporary tables are in pg_class too (pg_temp_N); only TOAST tables are left out.
const RELATIONS = `
  SELECT c.oid::int8 AS oid, n.nspname AS schema, c.relname AS name, c.relkind AS kind,
         c.relpersistence = 't' AS temporary,
         CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END AS definition
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname NOT LIKE 'pg\\_toast%'`;

const COLUMNS = `
  SELECT a.attrelid::int8 AS rel, a.attnum AS num, a.attname AS name
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
  WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attnum > 0 AND NOT a.attisdropped`;

// Partitions (of every level) and inheritance children, with their direct parents in declared order.
const INHERITS = `SELECT inhrelid::int8 AS child, inhparent::int8 AS parent FROM pg_inherits ORDER BY inhrelid, inhseqno`;

// Types that are not built in: strings in both formats (citext and other 'S' types, enums) or not.
const TYPES = `SELECT oid::int8 AS oid, (typcategory = 'S' OR typtype = 'e') AS text_like FROM pg_type WHERE oid >= 16384`;

/**
 * Schemas searched, in this order, for an unqualified name when one relation must be chosen (star expansion):
 * pg_catalog, public, other schemas, temporary tables last. PostgreSQL looks at the session's own temporary schema
 * first, but the catalog holds every session's: one of them must never stand in for the permanent table of that
 * name (whose masked columns would then go unexpanded). Masks themselves are taken from every candidate.
 */
const SEARCH_ORDER = ["pg_catalog", "public"];

/**
 * What masking needs to know of a target's catalog, read with the gateway's own credential: relations by OID and by
 * name (temporary tables of every session included), their columns by number, the tables each is a partition or
 * child of, view definitions (whose lineage labels view columns) and which non-built-in types are strings. Loaded
 * when a session with masks starts, after DDL, and when a statement or a result names a relation it does not know;
 * a relation learned stays known until DDL makes the catalog stale, so reading a table again costs no load.
 */
export class MaskCatalog {
  #byOid = new Map<number, Relation>();
  #byName = new Map<string, Relation[]>();
  #textLike = new Map<number, boolean>();
  #viewLineage = new Map<number, OutputLineage>();
  #loadedAt = 0;
  #loads = 0;
  #stale = true;
  /** Counts stale() calls: DDL that commits while a load runs may not be in it, so that load leaves it stale. */
  #staleness = 0;
  #loading: Promise<void> | undefined;
  /** Relation OIDs and names seen but not known; the next load looks for them. */
  #sought = new Set<number | string>();
  /**
   * What a load looked for and did not find (a table created in a transaction not yet committed, or one dropped):
   * no further load is made for it until DDL makes the catalog stale, so a statement repeated does not reload.
   */
  #missing = new Set<number | string>();

  constructor(
    private readonly target: Target,
    private readonly tls: ConnectionOptions | undefined,
    private readonly logger: Logger,
    private readonly maxAgeMs = 60_000,
  ) {}

  get loaded(): boolean {
    return this.#loadedAt > 0;
  }

  /** How many times the catalog was read (for tests and measurements). */
  get loads(): number {
    return this.#loads;
  }

  /** Loads the catalog if it was never loaded, is stale or older than maxAgeMs; resolves when done (or failed). */
  fresh(): Promise<void> {
    if (!this.needsLoad) return Promise.resolve();
    this.#loading ??= this.#load().finally(() => {
      this.#loading = undefined;
    });
    return this.#loading;
  }

  /** Whether fresh() would load. */
  get needsLoad(): boolean {
    return this.#stale || this.#sought.size > 0 || Date.now() - this.#loadedAt >= this.maxAgeMs;
  }

  /** DDL went through: load again before the next statement that needs it. */
  stale(): void {
    this.#stale = true;
    this.#staleness++;
    this.#missing.clear();
  }

  /**
   * A relation OID (from a RowDescription) or name (from a statement) that the catalog does not know: the next
   * fresh() looks for it, unless a load since the last DDL already did. Returns whether a load will look.
   */
  seek(key: number | string): boolean {
    if (this.#missing.has(key)) return false;
    this.#sought.add(key);
    return true;
  }

  relation(oid: number): Relation | undefined {
    return this.#byOid.get(oid);
  }

  column(oid: number, attnum: number): CatalogColumn | undefined {
    const relation = this.#byOid.get(oid);
    const column = relation?.columns[attnum];
    return relation === undefined || column === undefined ? undefined : { relation, column };
  }

  /**
   * The relations a name as written may mean: the one so qualified, or for an unqualified name every relation of
   * that name in any schema (a session can change its search_path; masking assumes the worst).
   */
  relationsNamed(written: string): Relation[] {
    const parts = splitName(written);
    if (parts.length >= 2) {
      const [schema, name] = parts.slice(-2) as [string, string];
      return (this.#byName.get(name) ?? []).filter((r) => r.schema === schema || r.namespace === schema);
    }
    return this.#byName.get(parts[0] ?? "") ?? [];
  }

  /** Columns of the relation a name means, in order, for `*` (see SEARCH_ORDER). */
  columnsOf = (written: string): readonly string[] | undefined => {
    const candidates = this.relationsNamed(written);
    if (candidates.length === 0) return undefined;
    const rank = (r: Relation) => {
      if (r.temporary) return SEARCH_ORDER.length + 1;
      const i = SEARCH_ORDER.indexOf(r.schema);
      return i < 0 ? SEARCH_ORDER.length : i;
    };
    const chosen = [...candidates].sort((a, b) => rank(a) - rank(b))[0]!;
    return chosen.columns.filter((c): c is string => c !== undefined);
  };

  /** For a type OID of 16384 or more: whether its values are strings; undefined when unknown. */
  textLike(typeOid: number): boolean | undefined {
    return this.#textLike.get(typeOid);
  }

  /** The lineage of a view's columns, from its definition; "opaque" when it cannot be followed. */
  viewLineage(view: Relation): OutputLineage {
    let lineage = this.#viewLineage.get(view.oid);
    if (lineage === undefined) {
      try {
        lineage =
          view.definition === undefined ? "opaque" : outputLineage(view.definition, { columnsOf: this.columnsOf });
      } catch {
        lineage = "opaque";
      }
      this.#viewLineage.set(view.oid, lineage);
    }
    return lineage;
  }

  async #load(): Promise<void> {
    const sought = this.#sought;
    this.#sought = new Set();
    const staleness = this.#staleness;
    // An empty search_path makes pg_get_viewdef qualify every relation it names, and leaves pg_catalog alone to
    // resolve what the queries call (a user's function or operator of the same name must not run); nothing writes.
    const client = targetClient(this.target, this.tls, "agentgate-catalog", {
      options: "-c search_path= -c default_transaction_read_only=on",
    });
    try {
      this.#loads++;
      await client.connect();
      const relations = await client.query<{
        oid: string;
        schema: string;
        name: string;
        kind: string;
        temporary: boolean;
        definition: string | null;
      }>(RELATIONS);
      const columns = await client.query<{ rel: string; num: number; name: string }>(COLUMNS);
      const inherits = await client.query<{ child: string; parent: string }>(INHERITS);
      const types = await client.query<{ oid: string; text_like: boolean }>(TYPES);
      const byOid = new Map<number, Relation>();
      const byName = new Map<string, Relation[]>();
      for (const row of relations.rows) {
        const relation: Relation = {
          oid: Number(row.oid),
          schema: row.temporary ? "pg_temp" : row.schema,
          namespace: row.schema,
          name: row.name,
          kind: row.kind,
          temporary: row.temporary,
          columns: [],
          definition: row.definition ?? undefined,
          ancestors: [],
          descendants: [],
        };
        byOid.set(relation.oid, relation);
        byName.set(relation.name, [...(byName.get(relation.name) ?? []), relation]);
      }
      for (const row of columns.rows) {
        const relation = byOid.get(Number(row.rel));
        if (relation !== undefined) relation.columns[row.num] = row.name;
      }
      linkAncestors(byOid, inherits.rows);
      this.#byOid = byOid;
      this.#byName = byName;
      this.#textLike = new Map(types.rows.map((row) => [Number(row.oid), row.text_like]));
      this.#viewLineage = new Map();
      this.#loadedAt = Date.now();
      this.#stale = this.#staleness !== staleness;
      for (const key of sought) {
        if (typeof key === "number" ? !byOid.has(key) : this.relationsNamed(key).length === 0) this.#missing.add(key);
      }
    } catch (error) {
      for (const key of sought) this.#missing.add(key);
      this.logger.warn(
        { err: error, target: this.target.name },
        "catalog for masking not loaded: results of relations it does not know are refused",
      );
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}

/**
 * Sets each relation's ancestors from pg_inherits rows (child, direct parent), nearest first, each once, and each
 * ancestor's descendants.
 */
function linkAncestors(byOid: ReadonlyMap<number, Relation>, rows: readonly { child: string; parent: string }[]): void {
  const parents = new Map<number, number[]>();
  for (const row of rows) {
    const child = Number(row.child);
    parents.set(child, [...(parents.get(child) ?? []), Number(row.parent)]);
  }
  for (const [oid, relation] of byOid) {
    const seen = new Set<number>([oid]);
    const queue = [...(parents.get(oid) ?? [])];
    while (queue.length > 0) {
      const parent = queue.shift()!;
      if (seen.has(parent)) continue;
      seen.add(parent);
      const ancestor = byOid.get(parent);
      if (ancestor !== undefined) {
        relation.ancestors.push(ancestor);
        ancestor.descendants.push(relation);
      }
      queue.push(...(parents.get(parent) ?? []));
    }
  }
}

/** "s.t" → ["s", "t"]; the parser's names are already folded, so a dot inside quotes is not expected here. */
function splitName(written: string): string[] {
  return written.split(".");
}
