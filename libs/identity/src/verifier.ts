import {
  type CryptoKey,
  decodeProtectedHeader,
  errors,
  type JWTPayload,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
  jwtVerify,
  type ProtectedHeaderParameters,
} from "jose";
import * as oidc from "openid-client";
import { type Principal, principalFrom } from "./claims.ts";
import { IdentityConfigError, SignInError } from "./errors.ts";
import { jwtFailure } from "./failures.ts";
import { introspect } from "./introspection.ts";
import { issuerKeys } from "./jwks.ts";
import { type IdentityOptions, type IdentitySettings, identityProviderUrl, resolveOptions } from "./options.ts";

export interface TokenVerifier {
  /** The token's principal, or a SignInError saying why it is refused; an aborted `signal` rejects with its reason. */
  verify(token: string, signal?: AbortSignal): Promise<Principal>;
}

/**
 * Discovers the issuer (openid-client) and returns a verifier: JWTs are checked against the issuer's JWKS (see
 * issuerKeys: the provider's key rotation needs no restart), other tokens by introspection when configured.
 * Rejects with IdentityConfigError for a bad option or a failed discovery.
 */
export async function createTokenVerifier(options: IdentityOptions): Promise<TokenVerifier> {
  const settings = resolveOptions(options);
  const config = await discover(settings);
  const metadata = config.serverMetadata();
  const issuer = metadata.issuer;
  const jwksUri = discoveredEndpoint(metadata.jwks_uri, "jwks_uri", settings);
  if (settings.introspection !== undefined) {
    discoveredEndpoint(metadata.introspection_endpoint, "introspection_endpoint", settings);
  }
  const keys = issuerKeys(jwksUri, {
    timeoutMs: Math.ceil(settings.timeoutSeconds * 1000),
    cooldownMs: settings.jwksRefreshCooldownSeconds * 1000,
  });
  const jwtOptions: JWTVerifyOptions = {
    // The discovered value, which is what the provider writes into `iss` (openid-client checked it matches ours).
    issuer,
    audience: settings.audiences,
    algorithms: settings.algorithms,
    clockTolerance: settings.clockToleranceSeconds,
    requiredClaims: ["exp"],
  };
  const expectations = { ...settings, issuer };

  const verifyJwt = async (token: string, header: ProtectedHeaderParameters): Promise<Principal> => {
    try {
      const payload = await verifySignedJwt(token, keys, jwtOptions);
      return principalFrom(payload, issuer, settings.groupsClaim);
    } catch (error) {
      throw jwtFailure(error, { audiences: settings.audiences, algorithm: header.alg });
    }
  };

  const check = async (token: string): Promise<Principal> => {
    const header = jwtHeader(token);
    if (header !== undefined) return verifyJwt(token, header);
    if (settings.introspection === undefined) throw new SignInError("malformed", "password is not a token");
    return introspect(config, token, expectations);
  };

  return {
    verify: (token, signal) => abortable(check(token), signal),
  };
}

async function discover(settings: IdentitySettings): Promise<oidc.Configuration> {
  const { introspection, issuer } = settings;
  try {
    return await oidc.discovery(
      issuer,
      introspection?.clientId ?? "agentgate",
      undefined,
      introspection === undefined ? oidc.None() : oidc.ClientSecretBasic(introspection.clientSecret),
      {
        timeout: Math.ceil(settings.timeoutSeconds),
        // Checked by resolveOptions: http here means a loopback issuer that was explicitly allowed.
        execute: issuer.protocol === "http:" ? [oidc.allowInsecureRequests] : [],
      },
    );
  } catch (error) {
    throw new IdentityConfigError("discovery_failed", "issuer", `OIDC discovery failed: ${describe(error)}`, {
      cause: error,
    });
  }
}

/** An endpoint from the discovery document, held to the same https rule as the issuer. */
function discoveredEndpoint(value: string | undefined, name: string, settings: IdentitySettings): URL {
  if (value === undefined) {
    throw new IdentityConfigError("discovery_failed", "issuer", `the discovery document has no ${name}`);
  }
  try {
    return identityProviderUrl(value, settings.allowInsecureLoopbackIssuer, name);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new IdentityConfigError("discovery_failed", "issuer", `discovered ${reason}`, { cause: error });
  }
}

/** The protected header when `token` has the shape of a signed JWT (three dot-separated parts). */
function jwtHeader(token: string): ProtectedHeaderParameters | undefined {
  if (token.split(".").length !== 3) return undefined;
  try {
    return decodeProtectedHeader(token);
  } catch {
    return undefined;
  }
}

/** jwtVerify against the JWKS; when a token without `kid` matches several keys, each is tried in turn. */
async function verifySignedJwt(token: string, keys: JWTVerifyGetKey, options: JWTVerifyOptions): Promise<JWTPayload> {
  try {
    return (await jwtVerify(token, keys, options)).payload;
  } catch (error) {
    if (!(error instanceof errors.JWKSMultipleMatchingKeys)) throw error;
    const candidates: AsyncIterable<CryptoKey> = error;
    for await (const key of candidates) {
      try {
        return (await jwtVerify(token, key, options)).payload;
      } catch (inner) {
        if (!(inner instanceof errors.JWSSignatureVerificationFailed)) throw inner;
      }
    }
    throw new errors.JWSSignatureVerificationFailed();
  }
}

function abortable<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return work;
  if (signal.aborted) {
    work.catch(() => {}); // settles unobserved
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** One line about a discovery failure: openid-client's message and, for a failed fetch, the network error code. */
function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause;
  const code =
    typeof cause === "object" && cause !== null && "code" in cause && typeof cause.code === "string"
      ? ` (${cause.code})`
      : "";
  return `${error.message}${code}`.replace(/\s+/g, " ");
}
