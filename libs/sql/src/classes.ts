/**
 * What a statement does, from least to most dangerous. `class` is the maximum in this order and `classes` is sorted
 * by it. A policy should decide on `classes` (everything a statement does); the order only ranks them.
 *
 * - read: reads rows or catalog data, changes nothing.
 * - transaction: transaction control (BEGIN, COMMIT, SAVEPOINT, SET TRANSACTION ISOLATION ...).
 * - session: changes session state that later statements see (SET search_path, LISTEN, advisory locks).
 * - copy-out: streams rows to the client (COPY ... TO STDOUT).
 * - write: changes or locks data (DML, TRUNCATE, LOCK, FOR UPDATE, nextval, NOTIFY).
 * - copy-in: streams rows from the client into a table (COPY ... FROM STDIN).
 * - ddl: creates, alters or drops schema objects.
 * - procedural: runs code the analysis cannot see (DO, CALL, EXECUTE of an unknown statement, SQL in strings);
 *   always comes with "write" (fail closed).
 * - privilege: changes who may do what (GRANT, roles, policies, ownership) or escapes a read-only session
 *   (SET ROLE, SET default_transaction_read_only, START TRANSACTION READ WRITE, RESET ALL).
 * - admin: server administration or server-side file, program and network access (VACUUM, ALTER SYSTEM,
 *   COPY ... PROGRAM, pg_read_file, pg_terminate_backend, dblink).
 */
export const STATEMENT_CLASSES = [
  "read",
  "transaction",
  "session",
  "copy-out",
  "write",
  "copy-in",
  "ddl",
  "procedural",
  "privilege",
  "admin",
] as const;

export type StatementClass = (typeof STATEMENT_CLASSES)[number];

const RANK: ReadonlyMap<StatementClass, number> = new Map(STATEMENT_CLASSES.map((name, index) => [name, index]));

/** Position of a class in STATEMENT_CLASSES: higher is more dangerous. */
export function classRank(name: StatementClass): number {
  return RANK.get(name) ?? STATEMENT_CLASSES.length;
}

/** The most dangerous of `classes`; "read" for none. */
export function maxClass(classes: Iterable<StatementClass>): StatementClass {
  let max: StatementClass = "read";
  for (const name of classes) if (classRank(name) > classRank(max)) max = name;
  return max;
}

/** `classes` unique and in STATEMENT_CLASSES order. */
export function sortClasses(classes: Iterable<StatementClass>): StatementClass[] {
  return [...new Set(classes)].sort((a, b) => classRank(a) - classRank(b));
}
