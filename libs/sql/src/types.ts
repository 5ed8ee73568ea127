import type { StatementClass } from "./classes.ts";

/** Facts about a statement that its class alone does not say. Absent keys mean "no". */
export interface StatementFlags {
  /** A WITH query inserts, updates, deletes or merges (the statement is a write whatever its top level). */
  dataModifyingCte?: true;
  /** EXPLAIN ANALYZE: the explained statement really runs. */
  explainAnalyze?: true;
  /** SELECT ... INTO creates and fills a table. */
  selectInto?: true;
  /** COPY ... PROGRAM: the server runs a shell command. */
  copyProgram?: true;
  /** COPY to or from a file on the database server. */
  copyFile?: true;
  /**
   * Protected settings the statement changes (comma-separated, sorted): default_transaction_read_only,
   * transaction_read_only, role, session_authorization; "all" for RESET ALL and DISCARD ALL; "*" when set_config()
   * is given a setting name that is not a constant.
   */
  protectedSetting?: string;
  /** Runs SQL the analysis cannot see: DO, EXECUTE of an unknown prepared statement, query_to_xml() and the like. */
  dynamicSql?: true;
  /** PREPARE: the name prepared (the statement is classified by its body). */
  prepare?: string;
  /** EXECUTE: the name executed (classified by the prepared body when known, else procedural). */
  execute?: string;
  /** Functions that are neither PostgreSQL built-ins nor judged by the catalog; each counts as a write. */
  unknownFunctions?: string[];
  /** Transaction control (BEGIN, COMMIT, SAVEPOINT ...): what it does to the transaction block. */
  transaction?: TransactionControl;
  /** DECLARE ... WITH HOLD: the cursor's query runs to completion when the transaction commits. */
  holdCursor?: true;
  /**
   * What the target's catalog says runs code that may write behind what the statement names, as "relation v",
   * "operator ===", "type ticket" (sorted): their classes are among the statement's.
   */
  hiddenEffects?: string[];
  /**
   * Names the catalog does not know (created after it was loaded, or not there at all), as "relation t",
   * "operator ===", "type t" (sorted). Each counts as a write; the gateway reloads the catalog and analyses again.
   */
  unresolved?: string[];
}

/** What a transaction-control statement does, as the gateway's read-only backstop follows it. */
export interface TransactionControl {
  /** begin: BEGIN or START TRANSACTION; commit: COMMIT or END; rollback: ROLLBACK or ABORT; prepare: PREPARE TRANSACTION. */
  kind: "begin" | "commit" | "rollback" | "savepoint" | "release" | "rollback_to" | "prepare" | "prepared";
  /** SAVEPOINT, RELEASE and ROLLBACK TO: the savepoint's name (as PostgreSQL folds it). */
  savepoint?: string;
  /** COMMIT AND CHAIN, ROLLBACK AND CHAIN: a new block starts at once, with the same characteristics. */
  chain?: true;
  /** BEGIN ... READ ONLY or READ WRITE, when the statement says. */
  readOnly?: boolean;
}

export interface StatementAnalysis {
  /** The most dangerous thing the statement does: the maximum of `classes`. */
  class: StatementClass;
  /** Everything the statement does, unique, in STATEMENT_CLASSES order. */
  classes: StatementClass[];
  /** Parse node name of the statement, e.g. "SelectStmt", "DeleteStmt", "CreateStmt". */
  kind: string;
  /** Relations read, as written ("public.t" only when the SQL says public.t), sorted. CTE names are not relations. */
  reads: string[];
  /** Relations written, created, altered, dropped or locked, as written, sorted. */
  writes: string[];
  /** Column references as written ("t.c", "c", "t.*", "*") and columns assigned by INSERT/UPDATE/MERGE, sorted. */
  columns: string[];
  /** Functions called, lower-cased, schema-qualified when written so, sorted. */
  functions: string[];
  /** libpg-query fingerprint of this statement (constants removed). */
  fingerprint: string;
  /** This statement's own text, without the separating semicolon and surrounding whitespace. */
  text: string;
  flags: StatementFlags;
}

export interface Analysis {
  statements: StatementAnalysis[];
  /** The most dangerous class over all statements; "read" when there are none. */
  class: StatementClass;
  /** libpg-query fingerprint of the whole string; "" when it holds no statement. */
  fingerprint: string;
  /**
   * Key for caching decisions about this string. The fingerprint alone is NOT safe for that: it drops constants and
   * prepared-statement names, so `SELECT set_config('role', ...)` and `SELECT set_config('application_name', ...)`,
   * or `EXECUTE a` and `EXECUTE b`, share one fingerprint. The key adds every fact the analysis derived (classes,
   * relations, columns, functions, flags), so equal keys mean equal analyses.
   */
  cacheKey: string;
}

/**
 * What the target database runs behind a name, from its catalog. Lookups are by name as the analysis reports it
 * (as written: "v" or "schema.v"; functions lower-cased); with several objects of one name (schemas, overloads) the
 * answer covers all of them. "Hidden" classes are those of code that may run: [] when nothing that may write runs.
 * The methods beyond volatility() are optional: a catalog without them leaves relations, operators and types to
 * the names alone (the read-only backstop stands behind).
 */
export interface TargetFacts {
  /**
   * provolatile of a user function by (lower-case) name as called ("f" or "schema.f"): "i" immutable, "s" stable,
   * "v" volatile; undefined when unknown. With overloads, report the most volatile one; a function that reaches
   * code that may write (an aggregate's support functions, a domain check on an argument) counts as volatile.
   */
  volatility(name: string): "i" | "s" | "v" | undefined;
  /** What reading a relation runs (view definitions, row-level security, column types); undefined: unknown. */
  relation?(name: string): readonly StatementClass[] | undefined;
  /** What a user-defined operator of this name runs; undefined: no user-defined operator has this name. */
  operator?(name: string): readonly StatementClass[] | undefined;
  /** What coercion to a type runs (user casts to it, domain checks); undefined: no such type. */
  type?(name: string): readonly StatementClass[] | undefined;
  /**
   * What user-defined implicit casts into built-in types run: PostgreSQL may apply one to any argument of any
   * function or operator, and the parse tree does not show where, so every call and operator counts.
   */
  readonly implicitCasts?: readonly StatementClass[];
}

/** The earlier name of TargetFacts, when it knew functions only. */
export type FunctionCatalog = TargetFacts;

export interface AnalyzeOptions {
  catalog?: TargetFacts;
  /**
   * Statements PREPAREd earlier in this session, by name: either the body ("DELETE FROM t") or the whole PREPARE
   * statement (a StatementAnalysis `text` whose `flags.prepare` is the name). Resolves EXECUTE.
   */
  prepared?: ReadonlyMap<string, string>;
  /**
   * Compute fingerprints (default true). Each costs a second parse inside libpg-query; decisions do not need them
   * (the cache key without them is the facts alone, which is what a decision depends on), the audit record does.
   */
  fingerprints?: boolean;
}
