import type { StatementClass } from "./classes.ts";
import type { StatementFlags, TargetFacts } from "./types.ts";

/** What the analysis has found out about one statement so far. */
export interface Facts {
  classes: Set<StatementClass>;
  reads: Set<string>;
  writes: Set<string>;
  columns: Set<string>;
  functions: Set<string>;
  unknownFunctions: Set<string>;
  protectedSettings: Set<string>;
  /** Catalog objects whose hidden code adds classes ("relation v", "operator ===", "type t"). */
  hidden: Set<string>;
  /** Names the catalog does not know, in the same form. */
  unresolved: Set<string>;
  flags: Omit<StatementFlags, "unknownFunctions" | "protectedSetting" | "hiddenEffects" | "unresolved">;
}

export function newFacts(): Facts {
  return {
    classes: new Set(),
    reads: new Set(),
    writes: new Set(),
    columns: new Set(),
    functions: new Set(),
    unknownFunctions: new Set(),
    protectedSettings: new Set(),
    hidden: new Set(),
    unresolved: new Set(),
    flags: {},
  };
}

/** Adds what `from` does to `to`: an EXPLAIN ANALYZE or EXECUTE does what its statement does. */
export function mergeFacts(from: Facts, to: Facts): void {
  for (const name of from.classes) to.classes.add(name);
  for (const name of from.reads) to.reads.add(name);
  for (const name of from.writes) to.writes.add(name);
  for (const name of from.columns) to.columns.add(name);
  for (const name of from.functions) to.functions.add(name);
  for (const name of from.unknownFunctions) to.unknownFunctions.add(name);
  for (const name of from.protectedSettings) to.protectedSettings.add(name);
  for (const name of from.hidden) to.hidden.add(name);
  for (const name of from.unresolved) to.unresolved.add(name);
  const { prepare: _prepare, execute: _execute, ...flags } = from.flags;
  Object.assign(to.flags, flags);
}

/** State that lives across the statements of one string: prepared statements and the catalog. */
export interface Session {
  readonly catalog: TargetFacts | undefined;
  /** What EXECUTE `name` would do; undefined when the statement is unknown. */
  resolve(name: string): Facts | undefined;
  prepare(name: string, body: Facts): void;
  /** Forgets `name`, or every prepared statement when undefined (DEALLOCATE ALL). */
  deallocate(name: string | undefined): void;
}

/** Names of WITH queries visible at a point of the tree (a CTE name is not a relation). */
export interface Scope {
  readonly names: ReadonlySet<string>;
  readonly parent: Scope | undefined;
}

export interface Context {
  readonly facts: Facts;
  readonly session: Session;
  /**
   * The expressions walked here are stored, not run (a view, function or default being defined): what they would
   * run through the catalog is no effect of this statement.
   */
  readonly inert?: true;
}
