/** Why a token was refused; the proxy maps each to the SQLSTATE and message a client sees. */
export type SignInFailure =
  | "expired"
  | "not_yet_valid"
  | "wrong_audience"
  | "wrong_issuer"
  | "bad_signature"
  | "unsupported_algorithm"
  | "malformed"
  | "inactive"
  | "unavailable";

/**
 * A token was refused. `message` is short and safe to show the client (never the token, never key material);
 * `cause` keeps the underlying error for the gateway's own logs.
 */
export class SignInError extends Error {
  override readonly name = "SignInError";
  readonly reason: SignInFailure;

  constructor(reason: SignInFailure, message: string, options?: ErrorOptions) {
    super(message, options);
    this.reason = reason;
  }
}

export type IdentityConfigErrorCode = "invalid_option" | "discovery_failed";

/** The verifier could not be created: a bad option (`key` names it) or an issuer whose discovery failed. */
export class IdentityConfigError extends Error {
  override readonly name = "IdentityConfigError";
  readonly code: IdentityConfigErrorCode;
  /** The option at fault, e.g. "issuer" or "algorithms". */
  readonly key: string;

  constructor(code: IdentityConfigErrorCode, key: string, reason: string, options?: ErrorOptions) {
    super(`${key}: ${reason}`, options);
    this.code = code;
    this.key = key;
  }
}
