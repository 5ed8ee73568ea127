// Turning what jose or the identity provider reported into the SignInError a client sees.
import { errors } from "jose";
import { SignInError } from "./errors.ts";

export const UNAVAILABLE_MESSAGE = "identity provider is unavailable";

/** What the messages may mention: the accepted audiences (our configuration) and the token's own `alg` header. */
export interface FailureContext {
  audiences: readonly string[];
  algorithm: unknown;
}

/** The SignInError for an error from jwtVerify; anything unexpected counts as the provider being unavailable. */
export function jwtFailure(error: unknown, context: FailureContext): SignInError {
  if (error instanceof SignInError) return error;
  const fail = (reason: SignInError["reason"], message: string) => new SignInError(reason, message, { cause: error });
  if (error instanceof errors.JWTExpired) return fail("expired", "token expired");
  if (error instanceof errors.JWTClaimValidationFailed) return claimFailure(error, context, fail);
  if (error instanceof errors.JOSEAlgNotAllowed) {
    return fail("unsupported_algorithm", `token algorithm ${printable(context.algorithm)} is not allowed`);
  }
  if (error instanceof errors.JOSENotSupported) {
    return fail("unsupported_algorithm", `token algorithm ${printable(context.algorithm)} is not supported`);
  }
  if (error instanceof errors.JWSSignatureVerificationFailed)
    return fail("bad_signature", "token signature is invalid");
  if (error instanceof errors.JWKSNoMatchingKey) {
    return fail("bad_signature", "token is not signed by any of the issuer's keys");
  }
  if (error instanceof errors.JWSInvalid || error instanceof errors.JWTInvalid)
    return fail("malformed", "token is malformed");
  // JWKSTimeout, JWKSInvalid, a non-200 JWKS response, a failed fetch.
  return fail("unavailable", UNAVAILABLE_MESSAGE);
}

function claimFailure(
  error: InstanceType<typeof errors.JWTClaimValidationFailed>,
  context: FailureContext,
  fail: (reason: SignInError["reason"], message: string) => SignInError,
): SignInError {
  if (error.reason === "invalid") return fail("malformed", `token claim ${printable(error.claim)} is invalid`);
  switch (error.claim) {
    case "iss":
      return fail("wrong_issuer", "token issuer is not trusted");
    case "aud":
      return fail("wrong_audience", audienceMessage(context.audiences));
    case "nbf":
      return fail("not_yet_valid", "token not yet valid");
    case "exp":
      return fail("malformed", "token has no expiry");
    default:
      return fail("malformed", `token claim ${printable(error.claim)} is invalid`);
  }
}

export function audienceMessage(audiences: readonly string[]): string {
  return `token audience does not include ${audiences.join(" or ")}`;
}

/** A header value from the token itself, echoed only when it is short and plain. */
function printable(value: unknown): string {
  return typeof value === "string" && /^[A-Za-z0-9_+-]{1,32}$/.test(value) ? value : "(unprintable)";
}
