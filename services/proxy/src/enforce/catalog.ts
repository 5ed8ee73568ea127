import type { ConnectionOptions } from "node:tls";
import type { Target } from "@agentgate/config";
import { FIXED_EFFECT_NAMES, routineClasses, type StatementClass, type TargetFacts } from "@agentgate/sql";
import type { Logger } from "pino";
import { targetClient } from "../target-client.ts";

type Volatility = "i" | "s" | "v";

/**
 * The target's catalog as a graph, in one statement (one snapshot). Nodes are relations (r), functions (f),
 * operators (o) and types (t), named kind + oid; an edge a → b says "using a may run b". What may run is found two
 * ways: pg_depend for user objects, and the function ids inside the trees PostgreSQL stores (view rules, policies,
 * domain checks, SQL-standard bodies), because dependencies on pinned built-ins such as nextval are not recorded.
 * Those trees are PostgreSQL's own serialisation (outfuncs): an identifier inside them is escaped and always
 * followed by another field, so a name can add an edge (more caution), never hide one.
 *
 * Functions come back only when they may matter: user functions, volatile built-ins, and built-ins judged by name.
 * Any other built-in an edge reaches is immutable or stable and not on a list: it runs nothing that writes.
 */
const QUERY = `
WITH
user_ns AS (SELECT oid FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema')),
me AS (SELECT rolsuper OR rolbypassrls AS bypass FROM pg_roles WHERE rolname = current_user),
trees AS (
  -- ON SELECT rules of user views (a materialized view's rule does not run when it is read).
  SELECT 'r' AS kind, rw.ev_class AS oid, 'pg_rewrite'::regclass AS classid, rw.oid AS objid, rw.ev_action::text AS tree
  FROM pg_rewrite rw JOIN pg_class c ON c.oid = rw.ev_class
  WHERE rw.ev_type = '1' AND c.relkind = 'v' AND c.relnamespace IN (SELECT oid FROM user_ns)
  UNION ALL
  -- Row-level security policies that apply when this role (the gateway's credential) reads.
  SELECT 'r', p.polrelid, 'pg_policy'::regclass, p.oid, concat(p.polqual::text, ' ', p.polwithcheck::text)
  FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
  WHERE c.relrowsecurity AND p.polcmd IN ('r', '*') AND NOT (SELECT bypass FROM me)
    AND (c.relforcerowsecurity OR NOT pg_has_role(c.relowner, 'USAGE'))
    AND EXISTS (SELECT FROM unnest(p.polroles) r WHERE r = 0 OR pg_has_role(r, 'USAGE'))
  UNION ALL
  SELECT 't', con.contypid, 'pg_constraint'::regclass, con.oid, con.conbin::text
  FROM pg_constraint con WHERE con.contypid <> 0
  UNION ALL
  SELECT 'f', p.oid, 'pg_proc'::regclass, p.oid, p.prosqlbody::text
  FROM pg_proc p WHERE p.pronamespace IN (SELECT oid FROM user_ns)
),
edges AS (
  -- Each row: from (kind || oid) and to (kind || oid), as text. Built only with pg_catalog's own operators and
  -- casts PostgreSQL ships (the connection's search_path is pg_catalog): a user's || (text, oid) or cast to oid
  -- cannot run here.
  SELECT t.kind || t.oid AS a, d.refclassid, d.refobjid
  FROM trees t JOIN pg_depend d ON d.classid = t.classid AND d.objid = t.objid AND d.deptype = 'n'
  WHERE NOT (d.refclassid = 'pg_class'::regclass AND d.refobjid = t.oid)
  UNION ALL
  -- A user function's own dependencies: argument and result types, aggregate support functions.
  SELECT 'f' || d.objid, d.refclassid, d.refobjid
  FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
  WHERE d.classid = 'pg_proc'::regclass AND d.deptype = 'n' AND p.pronamespace IN (SELECT oid FROM user_ns)
  UNION ALL
  SELECT 'f' || a.aggfnoid, 'pg_proc'::regclass, s.fn
  FROM pg_aggregate a, unnest(ARRAY[a.aggtransfn, a.aggfinalfn, a.aggcombinefn, a.aggserialfn, a.aggdeserialfn,
    a.aggmtransfn, a.aggminvtransfn, a.aggmfinalfn]::oid[]) AS s(fn)
  WHERE a.aggfnoid >= 16384 AND s.fn <> 0
  UNION ALL
  -- User operators: their function, the planner's selectivity estimators, their argument types.
  SELECT 'o' || o.oid, 'pg_proc'::regclass, s.fn
  FROM pg_operator o, unnest(ARRAY[o.oprcode, o.oprrest, o.oprjoin]::oid[]) AS s(fn)
  WHERE o.oid >= 16384 AND s.fn <> 0
  UNION ALL
  SELECT 'o' || o.oid, 'pg_type'::regclass, s.typ FROM pg_operator o, unnest(ARRAY[o.oprleft, o.oprright]) AS s(typ)
  WHERE o.oid >= 16384 AND s.typ >= 16384
  UNION ALL
  -- Sorting or comparing with an operator runs the support functions of its operator families.
  SELECT 'o' || amop.amopopr, 'pg_proc'::regclass, amproc.amproc
  FROM pg_amop amop JOIN pg_amproc amproc ON amproc.amprocfamily = amop.amopfamily
  WHERE amop.amopopr >= 16384 OR amproc.amproc >= 16384
  UNION ALL
  -- Columns of user types (domains, enums, composites): reading compares, sorts and checks their values.
  SELECT 'r' || a.attrelid, 'pg_type'::regclass, a.atttypid FROM pg_attribute a
  WHERE a.attnum > 0 AND NOT a.attisdropped AND a.atttypid >= 16384
  UNION ALL
  -- Coercion to a type: user casts to it, a domain's base type (and checks, above), an array's element, a
  -- composite's fields, a user base type's input functions; values of a user type: its default operator classes.
  SELECT 't' || c.casttarget, 'pg_proc'::regclass, c.castfunc FROM pg_cast c WHERE c.oid >= 16384 AND c.castfunc <> 0
  UNION ALL
  -- An implicit cast into a built-in type may apply to any argument of any function or operator: node x0.
  SELECT 'x0', 'pg_proc'::regclass, c.castfunc FROM pg_cast c
  WHERE c.oid >= 16384 AND c.castfunc <> 0 AND c.castcontext = 'i' AND c.casttarget < 16384
  UNION ALL
  SELECT 't' || t.oid, 'pg_type'::regclass, t.typbasetype FROM pg_type t WHERE t.typtype = 'd'
  UNION ALL
  SELECT 't' || t.oid, 'pg_type'::regclass, t.typelem FROM pg_type t WHERE t.oid >= 16384 AND t.typelem <> 0
  UNION ALL
  SELECT 't' || t.oid, 'pg_type'::regclass, a.atttypid
  FROM pg_type t JOIN pg_attribute a ON a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
  WHERE t.typtype = 'c' AND t.oid >= 16384 AND a.atttypid >= 16384
  UNION ALL
  SELECT 't' || t.oid, 'pg_proc'::regclass, s.fn
  FROM pg_type t, unnest(ARRAY[t.typinput, t.typreceive]::oid[]) AS s(fn)
  WHERE t.oid >= 16384 AND t.typtype = 'b' AND s.fn >= 16384
  UNION ALL
  SELECT 't' || opc.opcintype, 'pg_proc'::regclass, amproc.amproc
  FROM pg_opclass opc JOIN pg_amproc amproc ON amproc.amprocfamily = opc.opcfamily
  WHERE opc.opcdefault AND opc.opcintype >= 16384
  UNION ALL
  SELECT 't' || opc.opcintype, 'pg_operator'::regclass, amop.amopopr
  FROM pg_opclass opc JOIN pg_amop amop ON amop.amopfamily = opc.opcfamily
  WHERE opc.opcdefault AND opc.opcintype >= 16384
),
keyed AS (
  SELECT a || ' ' || CASE refclassid WHEN 'pg_class'::regclass THEN 'r' WHEN 'pg_proc'::regclass THEN 'f'
    WHEN 'pg_operator'::regclass THEN 'o' ELSE 't' END || refobjid AS edge
  FROM edges WHERE refclassid IN ('pg_class'::regclass, 'pg_proc'::regclass, 'pg_operator'::regclass,
    'pg_type'::regclass)
  UNION ALL
  -- Functions a tree calls, built-ins included (pinned objects have no pg_depend rows): the node ids in the tree.
  SELECT t.kind || t.oid || ' f' || m[1]
  FROM trees t, regexp_matches(t.tree, ':(?:funcid|aggfnoid|winfnoid|opfuncid) ([0-9]+)', 'g') AS m
)
SELECT
  (SELECT coalesce(json_agg(json_build_array(p.oid, n.nspname, p.proname, p.provolatile, p.pronamespace IN (SELECT oid FROM user_ns))), '[]')
   FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
   WHERE p.provolatile = 'v' OR p.proname::text IN (SELECT unnest($1::text[])) OR p.pronamespace IN (SELECT oid FROM user_ns)) AS functions,
  (SELECT coalesce(json_agg(json_build_array(c.oid, CASE WHEN n.nspname LIKE 'pg\\_temp\\_%' THEN 'pg_temp' ELSE n.nspname END, c.relname, c.relkind)), '[]')
   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f', 'S')) AS relations,
  (SELECT coalesce(json_agg(json_build_array(t.oid, n.nspname, t.typname)), '[]')
   FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace) AS types,
  (SELECT coalesce(json_agg(json_build_array(o.oid, n.nspname, o.oprname)), '[]')
   FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace WHERE o.oid >= 16384) AS operators,
  (SELECT coalesce(json_agg(DISTINCT edge), '[]') FROM keyed) AS edges`;

export type Named = [oid: string, schema: string, name: string, ...rest: string[]];

export interface CatalogRow {
  functions: [oid: string, schema: string, name: string, volatility: Volatility, user: boolean][];
  /** With relkind: a foreign table ("f") runs what its server runs, which no catalog here shows. */
  relations: [oid: string, schema: string, name: string, relkind: string][];
  types: Named[];
  operators: Named[];
  edges: string[];
}

const RANK: Record<Volatility, number> = { i: 0, s: 1, v: 2 };
const NOTHING: readonly StatementClass[] = Object.freeze([]);

/** Lookups by name, as the analysis asks: "schema.name" and "name" (the union over schemas). */
export interface Facts {
  /** What implicit user casts into built-in types may run, wherever a function or operator takes an argument. */
  implicitCasts: readonly StatementClass[];
  volatility: Map<string, Volatility>;
  relations: Map<string, readonly StatementClass[]>;
  operators: Map<string, readonly StatementClass[]>;
  types: Map<string, readonly StatementClass[]>;
}

const EMPTY: Facts = {
  implicitCasts: NOTHING,
  volatility: new Map(),
  relations: new Map(),
  operators: new Map(),
  types: new Map(),
};

/** A forced reload for a name that was still unknown this recently is not repeated (a typo does not load each time). */
const UNKNOWN_FOR_MS = 1000;

/**
 * What the target runs behind names, read from its catalog with the gateway's credential (so row-level security
 * is judged for the role sessions use): user functions' volatility, and for every relation, user operator and
 * type the classes of what reading, applying or coercing to it may run, through views over views, policies,
 * casts, domains, aggregates' support functions and operator families. One load, one freshness rule: facts are
 * reloaded when older than maxAgeMs (at session start before it goes on; before a statement in the background),
 * and before the statement is judged after DDL through the gateway or when it names something they do not know.
 * Until the first load (or when it fails) nothing is known, which the analysis treats as writes: fail closed.
 */
export class TargetCatalog implements TargetFacts {
  #facts: Facts = EMPTY;
  #loadedAt = 0;
  /** The load in flight, and its sequence number; #done is the number of the last one that finished. */
  #loading: Promise<void> | undefined;
  #started = 0;
  #done = 0;
  /** The first load number that counts as fresh: one that started after the last stale(). */
  #freshFrom = 0;
  /** When the last load that finished had started, and when the last one failed (0: it did not). */
  #lastStart = 0;
  #failedAt = 0;
  /** Names still unknown after a forced reload, with when that reload started. */
  #unknownSince = new Map<string, number>();

  constructor(
    private readonly target: Target,
    private readonly tls: ConnectionOptions | undefined,
    private readonly logger: Logger,
    private readonly maxAgeMs = 30_000,
  ) {}

  volatility(name: string): Volatility | undefined {
    return this.#facts.volatility.get(name);
  }

  relation(name: string): readonly StatementClass[] | undefined {
    return this.#facts.relations.get(name);
  }

  operator(name: string): readonly StatementClass[] | undefined {
    return this.#facts.operators.get(name);
  }

  type(name: string): readonly StatementClass[] | undefined {
    return this.#facts.types.get(name);
  }

  get implicitCasts(): readonly StatementClass[] {
    return this.#facts.implicitCasts;
  }

  /** Whether the facts are older than maxAgeMs (or were never loaded, or DDL made them stale): fresh() would load. */
  get expired(): boolean {
    return Date.now() - this.#loadedAt >= this.maxAgeMs;
  }

  /**
   * Before a statement is judged: true when the facts must be loaded first (never loaded, or DDL through the
   * gateway made them stale); facts that are merely older than maxAgeMs are reloaded in the background and serve
   * until then. A load that failed is not tried again for a second, so a target that refuses the catalog is not
   * asked per statement.
   */
  mustLoad(): boolean {
    if (!this.expired || Date.now() - this.#failedAt < UNKNOWN_FOR_MS) return false;
    if (this.#loadedAt === 0) return true;
    if (this.#loading === undefined) void this.#load();
    return false;
  }

  /**
   * Loads the catalog if it is missing or older than maxAgeMs; resolves when it is usable (or known to be not).
   * With `unknown` (names a statement uses that the facts lack, as the analysis reports them), resolves once a load
   * that started after this call has finished, unless each of those names was still unknown after a load that
   * started less than a second ago.
   */
  fresh(options: { unknown?: readonly string[] } = {}): Promise<void> {
    const unknown = options.unknown ?? [];
    if (unknown.length === 0) {
      if (!this.expired || Date.now() - this.#failedAt < UNKNOWN_FOR_MS) return Promise.resolve();
      // The load in flight will do, unless it started before stale() was called.
      const next = this.#loading === undefined ? this.#started + 1 : this.#started;
      return this.#loadAfter(Math.max(next, this.#freshFrom));
    }
    const now = Date.now();
    if (unknown.every((name) => now - (this.#unknownSince.get(name) ?? 0) < UNKNOWN_FOR_MS)) return Promise.resolve();
    return this.#loadAfter(this.#started + 1).then(() => {
      if (this.#unknownSince.size > 10_000) this.#unknownSince.clear();
      for (const name of unknown) this.#unknownSince.set(name, this.#lastStart);
    });
  }

  /** Forgets the load time, so the next session or statement reloads (after DDL went through, for example). */
  stale(): void {
    this.#loadedAt = 0;
    this.#freshFrom = this.#started + 1;
  }

  /** Resolves when load number `wanted` (or a later one) has finished. */
  async #loadAfter(wanted: number): Promise<void> {
    while (this.#done < wanted) await (this.#loading ?? this.#load());
  }

  #load(): Promise<void> {
    const number = ++this.#started;
    const startedAt = Date.now();
    this.#loading = this.#read(number, startedAt).finally(() => {
      this.#done = number;
      this.#lastStart = startedAt;
      this.#loading = undefined;
    });
    return this.#loading;
  }

  async #read(number: number, startedAt: number): Promise<void> {
    // pg_catalog only: unqualified names in QUERY must not reach a user's function or operator that shadows them
    // (a public.|| (text, oid) would run on every load), and nothing the load runs may write.
    const client = targetClient(this.target, this.tls, "agentgate-catalog", {
      options: "-c search_path=pg_catalog,pg_temp -c default_transaction_read_only=on",
    });
    try {
      await client.connect();
      const { rows } = await client.query<CatalogRow>(QUERY, [FIXED_EFFECT_NAMES]);
      this.#facts = factsOf(rows[0]!);
      // A load that began before DDL went through may not show it: its facts serve, but do not count as fresh.
      if (number >= this.#freshFrom) this.#loadedAt = startedAt;
      this.#failedAt = 0;
      this.logger.debug({ target: this.target.name, ms: Date.now() - startedAt }, "target catalog loaded");
    } catch (error) {
      this.#failedAt = Date.now();
      this.logger.warn(
        { err: error, target: this.target.name },
        "target catalog not loaded: relations, operators, types and functions it does not know are writes",
      );
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}

/** The closure: every node gets the classes of everything it may run, through any depth and any cycle. */
export function factsOf(row: CatalogRow): Facts {
  const classes = new Map<string, Set<StatementClass>>();
  const volatility = new Map<string, Volatility>();
  const pending: string[] = [];
  for (const [oid, , name, provolatile, user] of row.functions) {
    const own = routineClasses(name, provolatile, user);
    if (own.length > 0) {
      classes.set(`f${oid}`, new Set(own));
      pending.push(`f${oid}`);
    }
  }
  // Reading a foreign table runs the foreign server's side (a postgres_fdw table over a view that writes, a
  // file_fdw program): unknown, so a write. PostgreSQL 15's postgres_fdw does not make that side read-only either.
  for (const [oid, , , relkind] of row.relations) {
    if (relkind !== "f") continue;
    classes.set(`r${oid}`, new Set(["write"]));
    pending.push(`r${oid}`);
  }
  // Who may run each node: the edges reversed, walked from every function that may write.
  const callers = new Map<string, string[]>();
  for (const edge of row.edges) {
    const space = edge.indexOf(" ");
    const from = edge.slice(0, space);
    const to = edge.slice(space + 1);
    const list = callers.get(to);
    if (list === undefined) callers.set(to, [from]);
    else list.push(from);
  }
  for (let node = pending.pop(); node !== undefined; node = pending.pop()) {
    const found = classes.get(node)!;
    for (const caller of callers.get(node) ?? []) {
      let theirs = classes.get(caller);
      if (theirs === undefined) {
        theirs = new Set();
        classes.set(caller, theirs);
      }
      const size = theirs.size;
      for (const name of found) theirs.add(name);
      if (theirs.size > size) pending.push(caller);
    }
  }
  const of = (key: string): readonly StatementClass[] => {
    const found = classes.get(key);
    return found === undefined ? NOTHING : [...found].sort();
  };
  for (const [oid, schema, name, provolatile, user] of row.functions) {
    if (!user) continue;
    // A function that reaches code that may write is as good as volatile, whatever it declares.
    const effective: Volatility = classes.has(`f${oid}`) ? "v" : provolatile;
    for (const key of [`${schema.toLowerCase()}.${name.toLowerCase()}`, name.toLowerCase()]) {
      const known = volatility.get(key);
      if (known === undefined || RANK[effective] > RANK[known]) volatility.set(key, effective);
    }
  }
  return {
    implicitCasts: of("x0"),
    volatility,
    relations: byName(row.relations, "r", of),
    operators: byName(row.operators, "o", of),
    types: byName(row.types, "t", of),
  };
}

function byName(
  rows: readonly Named[],
  kind: string,
  of: (key: string) => readonly StatementClass[],
): Map<string, readonly StatementClass[]> {
  const map = new Map<string, readonly StatementClass[]>();
  for (const [oid, schema, name] of rows) {
    const found = of(`${kind}${oid}`);
    for (const key of [`${schema}.${name}`, name]) {
      const known = map.get(key);
      map.set(key, known === undefined || known.length === 0 ? found : union(known, found));
    }
  }
  return map;
}

function union(a: readonly StatementClass[], b: readonly StatementClass[]): readonly StatementClass[] {
  if (b.length === 0) return a;
  return [...new Set([...a, ...b])].sort();
}
