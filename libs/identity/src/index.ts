export { claimAt, groupsFrom, type Principal } from "./claims.ts";
export { IdentityConfigError, type IdentityConfigErrorCode, SignInError, type SignInFailure } from "./errors.ts";
export {
  DEFAULT_ALGORITHMS,
  type IdentityOptions,
  identityProviderUrl,
  isLoopbackUrl,
} from "./options.ts";
export { createTokenVerifier, type TokenVerifier } from "./verifier.ts";
