// RFC 7662 introspection for tokens that are not JWTs (opaque reference tokens).
import * as oidc from "openid-client";
import { type Principal, principalFrom } from "./claims.ts";
import { SignInError } from "./errors.ts";
import { audienceMessage, UNAVAILABLE_MESSAGE } from "./failures.ts";

export interface IntrospectionExpectations {
  issuer: string;
  audiences: readonly string[];
  groupsClaim: string;
  clockToleranceSeconds: number;
}

/** Asks the provider about `token`; an active answer is checked like a JWT's claims would be. */
export async function introspect(
  config: oidc.Configuration,
  token: string,
  expected: IntrospectionExpectations,
): Promise<Principal> {
  let response: Readonly<Record<string, unknown>>;
  try {
    response = await oidc.tokenIntrospection(config, token, { token_type_hint: "access_token" });
  } catch (error) {
    throw new SignInError("unavailable", UNAVAILABLE_MESSAGE, { cause: error });
  }
  checkIntrospected(response, expected, Math.floor(Date.now() / 1000));
  return principalFrom(response, expected.issuer, expected.groupsClaim);
}

/** The checks jwtVerify makes, applied to an introspection response; the provider vouches for the signature. */
export function checkIntrospected(
  response: Readonly<Record<string, unknown>>,
  expected: IntrospectionExpectations,
  now: number,
): void {
  if (response.active !== true) throw new SignInError("inactive", "token is not active");
  if (response.iss !== undefined && response.iss !== expected.issuer) {
    throw new SignInError("wrong_issuer", "token issuer is not trusted");
  }
  const aud = response.aud;
  const audiences = typeof aud === "string" ? [aud] : Array.isArray(aud) ? aud : [];
  if (!audiences.some((audience) => expected.audiences.includes(audience))) {
    throw new SignInError("wrong_audience", audienceMessage(expected.audiences));
  }
  const tolerance = expected.clockToleranceSeconds;
  if (typeof response.exp === "number" && response.exp <= now - tolerance) {
    throw new SignInError("expired", "token expired");
  }
  if (typeof response.nbf === "number" && response.nbf > now + tolerance) {
    throw new SignInError("not_yet_valid", "token not yet valid");
  }
}
