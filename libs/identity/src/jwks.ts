import { setTimeout as sleep } from "node:timers/promises";
import { createRemoteJWKSet, customFetch, errors, type JWTVerifyGetKey } from "jose";

export interface IssuerKeysOptions {
  timeoutMs: number;
  /** After a fetch, an unknown key id refetches only once this much time has passed. */
  cooldownMs: number;
}

/**
 * The issuer's signing keys (jose's remote JWKS: cached, refetched every 10 minutes and when a token names a key
 * id it does not know). A token that names an unknown key during the cooldown after a fetch waits for the cooldown
 * to end and looks once more instead of being refused at once: the provider may just have rotated its keys, and
 * the JWKS is still fetched at most once per cooldown however many such tokens arrive.
 */
export function issuerKeys(url: URL, options: IssuerKeysOptions): JWTVerifyGetKey {
  let lastFetch = 0;
  const remote = createRemoteJWKSet(url, {
    timeoutDuration: options.timeoutMs,
    cooldownDuration: options.cooldownMs,
    [customFetch]: (input, init) => {
      lastFetch = Date.now();
      return fetch(input, init);
    },
  });
  // Every token waiting during one cooldown shares the one refetch at its end.
  let pending: Promise<void> | undefined;
  const refetchAfterCooldown = (): Promise<void> => {
    pending ??= sleep(Math.max(0, lastFetch + options.cooldownMs - Date.now()))
      .then(() => remote.reload())
      .finally(() => {
        pending = undefined;
      });
    return pending;
  };
  return async (header, token) => {
    // Outside the cooldown jose refetches by itself on an unknown key id; only inside it is there anything to add.
    const coolingDown = remote.coolingDown;
    try {
      return await remote(header, token);
    } catch (error) {
      if (!coolingDown || !(error instanceof errors.JWKSNoMatchingKey)) throw error;
      await refetchAfterCooldown();
      return remote(header, token);
    }
  };
}
