import { type ErrorFields, errorResponse } from "@agentgate/wire";

/** An error the gateway reports to a client on the wire: an SQLSTATE, a message, and whether it ends the session. */
export class GatewayError extends Error {
  override readonly name = "GatewayError";
  readonly code: string;
  readonly fatal: boolean;
  readonly detail: string | undefined;
  readonly hint: string | undefined;
  constructor(
    code: string,
    message: string,
    options: ErrorOptions & { fatal?: boolean; detail?: string; hint?: string } = {},
  ) {
    super(message, options);
    this.code = code;
    this.fatal = options.fatal ?? true;
    this.detail = options.detail;
    this.hint = options.hint;
  }

  toFields(): ErrorFields {
    return {
      severity: this.fatal ? "FATAL" : "ERROR",
      code: this.code,
      message: this.message,
      detail: this.detail,
      hint: this.hint,
    };
  }

  toWire(): Buffer {
    return errorResponse(this.toFields());
  }
}
