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

/** Volatility of functions in the target database. */
export interface FunctionCatalog {
  /**
   * provolatile of a function by (lower-case) name as called ("f" or "schema.f"): "i" immutable, "s" stable,
   * "v" volatile; undefined when unknown. With overloads, report the most volatile one.
   */
  volatility(name: string): "i" | "s" | "v" | undefined;
}

export interface AnalyzeOptions {
  catalog?: FunctionCatalog;
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
