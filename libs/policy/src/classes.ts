/**
 * Statement classes as the SQL analysis reports them, least to most dangerous (the order of libs/sql's
 * STATEMENT_CLASSES; kept here so evaluating policy does not load the SQL parser).
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

/** What a session restricted to these classes can still do without changing data: see `readOnly`. */
export const READ_ONLY_CLASSES: ReadonlySet<string> = new Set<StatementClass>([
  "read",
  "copy-out",
  "session",
  "transaction",
]);
