/**
 * Why masking could not be done. Every code means "do not send the data": the proxy fails the statement rather than
 * let a value through unmasked.
 * - invalid_rules: a mask rule is malformed (`issues` names each offending key).
 * - malformed_message: a DataRow or COPY row does not have the layout its header promises.
 * - plan_mismatch: a row has another number of columns than the plan made from its RowDescription.
 * - unparsable_sql: the statement whose lineage was asked for cannot be parsed.
 * - not_one_statement: outputLineage() was given several statements (statementLineages() takes them).
 */
export type MaskingErrorCode =
  | "invalid_rules"
  | "malformed_message"
  | "plan_mismatch"
  | "unparsable_sql"
  | "not_one_statement";

/** One problem in a list of mask rules: the key (`[2].column`) and why. Never quotes a value. */
export interface MaskRulesIssue {
  key: string;
  reason: string;
}

export class MaskingError extends Error {
  override readonly name = "MaskingError";
  readonly code: MaskingErrorCode;
  /** For invalid_rules: every problem found, the first one in the message. */
  readonly issues: readonly MaskRulesIssue[];
  constructor(
    code: MaskingErrorCode,
    message: string,
    options?: ErrorOptions & { issues?: readonly MaskRulesIssue[] },
  ) {
    super(message, options);
    this.code = code;
    this.issues = options?.issues ?? [];
  }
}
