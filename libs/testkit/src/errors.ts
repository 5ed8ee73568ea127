/** What went wrong while starting, using or stopping a throwaway server. */
export type TestkitErrorCode =
  | "binary_not_found"
  | "command_failed"
  | "start_failed"
  | "start_timeout"
  | "stopped"
  | "unsupported"
  | "bad_environment";

/** The one error type of the test kit; `code` says what failed, `cause` keeps the underlying error. */
export class TestkitError extends Error {
  override readonly name = "TestkitError";
  readonly code: TestkitErrorCode;

  constructor(code: TestkitErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}
