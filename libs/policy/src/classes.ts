// The classes the SQL analysis reports, least to most dangerous; the subpath keeps the SQL parser itself unloaded.
export { STATEMENT_CLASSES, type StatementClass } from "@agentgate/sql/classes";

import type { StatementClass } from "@agentgate/sql/classes";

/** What a session restricted to these classes can still do without changing data: see `readOnly`. */
export const READ_ONLY_CLASSES: ReadonlySet<string> = new Set<StatementClass>([
  "read",
  "copy-out",
  "session",
  "transaction",
]);
