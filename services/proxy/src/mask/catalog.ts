import type { ConnectionOptions } from "node:tls";
import type { Target } from "@agentgate/config";
import { type OutputLineage, outputLineage } from "@agentgate/masking";
import type { Logger } from "pino";
import { targetClient } from "../target-client.ts";

/** A table, view or other relation whose columns can be read. */
export interface Relation {
  oid: number;
  schema: string;
  name: string;
  /** pg_class.relkind: r table, p partitioned table, v view, m materialized view, f foreign table. */
  kind: string;
  /** Column names by attnum (index 0 unused); dropped columns are holes. */
  columns: (string | undefined)[];
  /** View definition as pg_get_viewdef gives it with an empty search_path (names schema-qualified). */
  definition: string | undefined;
}

/** A catalog column: where a value comes from, named as mask rules name it. */
export interface CatalogColumn {
  relation: Relation;
  column: string;
}

const RELATIONS = `
  SELECT c.oid::int8 AS oid, n.nspname AS schema, c.relname AS name, c.relkind AS kind,
         CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END AS definition
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
    AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'`;

const COLUMNS = `
  SELECT a.attrelid::int8 AS rel, a.attnum AS num, a.attname AS name
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
  WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attnum > 0 AND NOT a.attisdropped`;

// Types that are not built in: strings in both formats (citext and other 'S' types, enums) or not.
const TYPES = `SELECT oid::int8 AS oid, (typcategory = 'S' OR typtype = 'e') AS text_like FROM pg_type WHERE oid >= 16384`;

/** Schemas searched, in this order, for an unqualified name when one relation must be chosen (star expansion). */
const SEARCH_ORDER = ["pg_catalog", "public"];

/**
 * What masking needs to know of a target's catalog, read with the gateway's own credential: relations by OID and by
 * name, their columns by number, view definitions (whose lineage labels view columns) and which non-built-in types
 * are strings. Loaded when a session with masks starts and again after DDL or an unknown OID; until it has loaded,
 * every lookup fails, which masking treats as "mask it".
 */
export class MaskCatalog {
  #byOid = new Map<number, Relation>();
  #byName = new Map<string, Relation[]>();
  #textLike = new Map<number, boolean>();
  #viewLineage = new Map<number, OutputLineage>();
  #loadedAt = 0;
  #stale = true;
  #loading: Promise<void> | undefined;

  constructor(
    private readonly target: Target,
    private readonly tls: ConnectionOptions | undefined,
    private readonly logger: Logger,
    private readonly maxAgeMs = 60_000,
  ) {}

  get loaded(): boolean {
    return this.#loadedAt > 0;
  }

  /** Loads the catalog if it was never loaded, is stale or older than maxAgeMs; resolves when done (or failed). */
  fresh(): Promise<void> {
    if (!this.#stale && Date.now() - this.#loadedAt < this.maxAgeMs) return Promise.resolve();
    this.#loading ??= this.#load().finally(() => {
      this.#loading = undefined;
    });
    return this.#loading;
  }

  /** Whether fresh() would load. */
  get needsLoad(): boolean {
    return this.#stale || Date.now() - this.#loadedAt >= this.maxAgeMs;
  }

  /** DDL went through, or an unknown relation was seen: load again before the next statement that needs it. */
  stale(): void {
    this.#stale = true;
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
      return (this.#byName.get(name) ?? []).filter((r) => r.schema === schema);
    }
    return this.#byName.get(parts[0] ?? "") ?? [];
  }

  /** Columns of the relation a name means, in order, for `*`: pg_catalog first, then public, then others. */
  columnsOf = (written: string): readonly string[] | undefined => {
    const candidates = this.relationsNamed(written);
    if (candidates.length === 0) return undefined;
    const rank = (r: Relation) => {
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
    // An empty search_path makes pg_get_viewdef qualify every relation it names.
    const client = targetClient(this.target, this.tls, "agentgate-catalog", { options: "-c search_path=" });
    try {
      await client.connect();
      const relations = await client.query<{
        oid: string;
        schema: string;
        name: string;
        kind: string;
        definition: string | null;
      }>(RELATIONS);
      const columns = await client.query<{ rel: string; num: number; name: string }>(COLUMNS);
      const types = await client.query<{ oid: string; text_like: boolean }>(TYPES);
      const byOid = new Map<number, Relation>();
      const byName = new Map<string, Relation[]>();
      for (const row of relations.rows) {
        const relation: Relation = {
          oid: Number(row.oid),
          schema: row.schema,
          name: row.name,
          kind: row.kind,
          columns: [],
          definition: row.definition ?? undefined,
        };
        byOid.set(relation.oid, relation);
        byName.set(relation.name, [...(byName.get(relation.name) ?? []), relation]);
      }
      for (const row of columns.rows) {
        const relation = byOid.get(Number(row.rel));
        if (relation !== undefined) relation.columns[row.num] = row.name;
      }
      this.#byOid = byOid;
      this.#byName = byName;
      this.#textLike = new Map(types.rows.map((row) => [Number(row.oid), row.text_like]));
      this.#viewLineage = new Map();
      this.#loadedAt = Date.now();
      this.#stale = false;
    } catch (error) {
      this.logger.warn(
        { err: error, target: this.target.name },
        "catalog for masking not loaded: unknown columns are masked",
      );
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}

/** "s.t" → ["s", "t"]; the parser's names are already folded, so a dot inside quotes is not expected here. */
function splitName(written: string): string[] {
  return written.split(".");
}
