import { IdentityConfigError } from "./errors.ts";

export interface IdentityOptions {
  /** The issuer identifier; discovery reads `<issuer>/.well-known/openid-configuration`. */
  issuer: string;
  /** Accepted `aud` values: a token must name at least one. */
  audience: string | string[];
  /** Where the groups are: a dotted path like `realm_access.roles`, or a claim name. */
  groupsClaim: string;
  /** JWS algorithms accepted; default RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512 EdDSA. */
  algorithms?: string[];
  /** Leeway for exp and nbf; default 30. */
  clockToleranceSeconds?: number;
  /** When set, tokens that are not JWTs are checked by RFC 7662 introspection with these client credentials. */
  introspection?: { clientId: string; clientSecret: string };
  /** Allow an http:// issuer on 127.0.0.1, localhost or [::1] (tests and `agentgate dev`); never elsewhere. */
  allowInsecureLoopbackIssuer?: boolean;
  /**
   * After a JWKS fetch, a token with an unknown key id refetches the JWKS only once this many seconds have passed;
   * default 5. It bounds the load random key ids can cause; keep it short so a key rotation is picked up quickly.
   */
  jwksRefreshCooldownSeconds?: number;
  /** Limit for each request to the identity provider (discovery, JWKS, introspection); default 10. */
  timeoutSeconds?: number;
}

export const DEFAULT_ALGORITHMS: readonly string[] = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
];

/** The options with defaults applied and every value checked. */
export interface IdentitySettings {
  issuer: URL;
  audiences: string[];
  groupsClaim: string;
  algorithms: string[];
  clockToleranceSeconds: number;
  introspection: { clientId: string; clientSecret: string } | undefined;
  allowInsecureLoopbackIssuer: boolean;
  jwksRefreshCooldownSeconds: number;
  timeoutSeconds: number;
}

const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]"]);

/** Whether a URL's host is the loopback interface, the only place a plain-http identity provider is accepted. */
export function isLoopbackUrl(url: URL): boolean {
  return LOOPBACK_HOSTS.has(url.hostname);
}

/**
 * Parses an identity provider URL: https, or http on a loopback host when `allowInsecureLoopback` is set.
 * `key` names the option in the error.
 */
export function identityProviderUrl(value: string, allowInsecureLoopback: boolean, key = "issuer"): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalid(key, "is not a URL");
  }
  if (url.protocol === "https:") return url;
  if (url.protocol !== "http:") throw invalid(key, "must be an https:// URL");
  if (!isLoopbackUrl(url)) throw invalid(key, "must use https:// (http:// is accepted only on a loopback address)");
  if (!allowInsecureLoopback) {
    throw invalid(key, "must use https:// (http:// on loopback needs allowInsecureLoopbackIssuer)");
  }
  return url;
}

export function resolveOptions(options: IdentityOptions): IdentitySettings {
  const allowInsecureLoopbackIssuer = options.allowInsecureLoopbackIssuer ?? false;
  const audiences = typeof options.audience === "string" ? [options.audience] : [...options.audience];
  if (audiences.length === 0 || audiences.some((audience) => typeof audience !== "string" || audience === "")) {
    throw invalid("audience", "must be a non-empty string or a list of them");
  }
  if (typeof options.groupsClaim !== "string" || options.groupsClaim === "") {
    throw invalid("groupsClaim", "must name a claim");
  }
  const algorithms = [...(options.algorithms ?? DEFAULT_ALGORITHMS)];
  if (algorithms.length === 0) throw invalid("algorithms", "must list at least one algorithm");
  for (const algorithm of algorithms) {
    // A symmetric algorithm would let anyone holding the (public) JWKS mint tokens.
    if (algorithm === "none" || algorithm.startsWith("HS")) {
      throw invalid("algorithms", `${algorithm} is not an asymmetric signature algorithm`);
    }
  }
  const introspection = options.introspection;
  if (introspection !== undefined && (introspection.clientId === "" || introspection.clientSecret === "")) {
    throw invalid("introspection", "needs a clientId and a clientSecret");
  }
  return {
    issuer: identityProviderUrl(options.issuer, allowInsecureLoopbackIssuer),
    audiences,
    groupsClaim: options.groupsClaim,
    algorithms,
    clockToleranceSeconds: seconds("clockToleranceSeconds", options.clockToleranceSeconds, 30),
    introspection,
    allowInsecureLoopbackIssuer,
    jwksRefreshCooldownSeconds: seconds("jwksRefreshCooldownSeconds", options.jwksRefreshCooldownSeconds, 5),
    timeoutSeconds: seconds("timeoutSeconds", options.timeoutSeconds, 10, { positive: true }),
  };
}

function seconds(key: string, value: number | undefined, fallback: number, { positive = false } = {}): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 0 || (positive && value === 0)) {
    throw invalid(key, `must be a ${positive ? "positive" : "non-negative"} number of seconds`);
  }
  return value;
}

function invalid(key: string, reason: string): IdentityConfigError {
  return new IdentityConfigError("invalid_option", key, reason);
}
