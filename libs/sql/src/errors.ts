/**
 * SQLSTATEs an analysis can fail with. libpg-query does not report the parser's SQLSTATE, so everything the parser
 * rejects is 42601 except running out of stack (54001, as PostgreSQL reports it).
 * - 42601 syntax_error: the parser rejected the text.
 * - 54001 statement_too_complex: nested too deeply for the parser or the analysis.
 * - 22021 character_not_in_repertoire: a NUL character, which PostgreSQL never accepts in a query string.
 * - XX000 internal_error: the parser failed in a way it does not describe (kept as `cause`).
 */
export type SqlAnalysisErrorCode = "42601" | "54001" | "22021" | "XX000";

/** Why a SQL string could not be analysed. Such a string must be refused, never passed through. */
export class SqlAnalysisError extends Error {
  override readonly name = "SqlAnalysisError";
  readonly code: SqlAnalysisErrorCode;
  /** 1-based character position in the SQL string, as PostgreSQL reports it; absent when the parser gives none. */
  readonly position: number | undefined;
  constructor(code: SqlAnalysisErrorCode, message: string, position?: number, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.position = position;
  }
}
