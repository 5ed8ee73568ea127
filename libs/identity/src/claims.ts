// Reading a principal out of verified claims (a JWT payload or an introspection response). Pure: no I/O.
import { SignInError } from "./errors.ts";

export interface Principal {
  subject: string;
  groups: string[];
  issuer: string;
  clientId?: string | undefined;
  /** epoch seconds */
  expiresAt: number;
}

type Claims = Readonly<Record<string, unknown>>;

/**
 * The value at a dotted path such as `realm_access.roles`. A claim whose own name contains dots (Auth0's
 * namespaced `https://example.com/groups`) is found too: the whole path is tried as one name first.
 */
export function claimAt(claims: Claims, path: string): unknown {
  if (Object.hasOwn(claims, path)) return claims[path];
  let value: unknown = claims;
  for (const segment of path.split(".")) {
    if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
    if (!Object.hasOwn(value, segment)) return undefined;
    value = (value as Claims)[segment];
  }
  return value;
}

/** Groups from a claim value: an array of strings, or one string separated by spaces or commas. */
export function groupsFrom(value: unknown): string[] {
  const names = typeof value === "string" ? value.split(/[\s,]+/) : Array.isArray(value) ? value : [];
  const groups = names.filter((name): name is string => typeof name === "string").map((name) => name.trim());
  return [...new Set(groups.filter((name) => name.length > 0))];
}

/** The principal named by verified claims; without `sub` (some introspection responses) the client is the subject. */
export function principalFrom(claims: Claims, issuer: string, groupsClaim: string): Principal {
  const clientId = stringClaim(claims.client_id) ?? stringClaim(claims.azp);
  const subject = stringClaim(claims.sub) ?? clientId;
  if (subject === undefined) throw new SignInError("malformed", "token has no subject");
  const expiresAt = claims.exp;
  if (typeof expiresAt !== "number" || !Number.isFinite(expiresAt)) {
    throw new SignInError("malformed", "token has no expiry");
  }
  return { subject, groups: groupsFrom(claimAt(claims, groupsClaim)), issuer, clientId, expiresAt };
}

function stringClaim(value: unknown): string | undefined {
  return typeof value === "string" && value.length > 0 ? value : undefined;
}
