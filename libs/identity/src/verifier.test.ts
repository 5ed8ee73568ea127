import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { type OidcProviderInstance, startOidcProvider } from "@agentgate/testkit";
import { IdentityConfigError, SignInError, type SignInFailure } from "./errors.ts";
import { createTokenVerifier, type TokenVerifier } from "./verifier.ts";

const AUDIENCE = "agentgate";
const now = () => Math.floor(Date.now() / 1000);

function payloadOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString("utf8"));
}

/** Verifies `token`, expecting a refusal for `reason`; returns the error. */
async function refused(verifier: TokenVerifier, token: string, reason: SignInFailure): Promise<SignInError> {
  const error = await verifier.verify(token).then(
    () => assert.fail(`the token was accepted; expected a refusal for ${reason}`),
    (e: unknown) => e,
  );
  assert.ok(error instanceof SignInError, `expected a SignInError, got ${String(error)}`);
  assert.equal(error.reason, reason, error.message);
  if (token !== "") assert.ok(!error.message.includes(token), "the message must not contain the token");
  return error;
}

describe("a verifier for the provider's JWT access tokens", { timeout: 30_000 }, () => {
  let idp: OidcProviderInstance;
  let verifier: TokenVerifier;
  before(async () => {
    idp = await startOidcProvider({
      audience: AUDIENCE,
      clients: [{ clientId: "agent-a", clientSecret: "secret-a", groups: ["analysts", "readers"] }],
    });
    verifier = await createTokenVerifier({
      issuer: idp.issuer,
      audience: AUDIENCE,
      groupsClaim: "groups",
      allowInsecureLoopbackIssuer: true,
    });
  });
  after(() => idp.stop());

  it("accepts a token from the client-credentials grant and names its principal", async () => {
    const token = await idp.token("agent-a");
    assert.deepEqual(await verifier.verify(token), {
      subject: "agent-a",
      groups: ["analysts", "readers"],
      issuer: idp.issuer,
      clientId: "agent-a",
      expiresAt: payloadOf(token).exp,
    });
  });

  it("accepts any of several audiences, and azp as the client id", async () => {
    const several = await createTokenVerifier({
      issuer: idp.issuer,
      audience: ["other", AUDIENCE],
      groupsClaim: "groups",
      allowInsecureLoopbackIssuer: true,
    });
    const principal = await several.verify(await idp.sign({ sub: "user-1", azp: "cli", aud: ["x", AUDIENCE] }));
    assert.equal(principal.subject, "user-1");
    assert.equal(principal.clientId, "cli");
    assert.deepEqual(principal.groups, []);
  });

  it("refuses an expired token, allowing the clock tolerance", async () => {
    const error = await refused(verifier, await idp.sign({ sub: "x", iat: now() - 600, exp: now() - 300 }), "expired");
    assert.equal(error.message, "token expired");
    await verifier.verify(await idp.sign({ sub: "x", iat: now() - 600, exp: now() - 10 }));
  });

  it("refuses a token not yet valid", async () => {
    const error = await refused(verifier, await idp.sign({ sub: "x", nbf: now() + 600 }), "not_yet_valid");
    assert.equal(error.message, "token not yet valid");
  });

  it("refuses a token for another audience", async () => {
    const error = await refused(verifier, await idp.sign({ sub: "x", aud: "someone-else" }), "wrong_audience");
    assert.equal(error.message, "token audience does not include agentgate");
  });

  it("refuses a token from another issuer, even signed with the provider's key", async () => {
    const error = await refused(
      verifier,
      await idp.sign({ sub: "x", iss: "https://evil.example.com" }),
      "wrong_issuer",
    );
    assert.equal(error.message, "token issuer is not trusted");
  });

  it("refuses a token whose payload was changed after signing", async () => {
    const [header, payload = "", signature] = (await idp.token("agent-a")).split(".");
    const i = Math.floor(payload.length / 2);
    const flipped = `${payload.slice(0, i)}${payload[i] === "A" ? "B" : "A"}${payload.slice(i + 1)}`;
    const error = await refused(verifier, `${header}.${flipped}.${signature}`, "bad_signature");
    assert.equal(error.message, "token signature is invalid");
  });

  it("refuses an unsigned token (alg: none)", async () => {
    const error = await refused(verifier, await idp.sign({ sub: "x" }, { alg: "none" }), "unsupported_algorithm");
    assert.equal(error.message, "token algorithm none is not allowed");
  });

  it("refuses HS256 signed with the provider's public key as the secret", async () => {
    const jwk = idp.publicJwks().keys[0]!;
    const token = await idp.sign({ sub: "x" }, { alg: "HS256", key: JSON.stringify(jwk) });
    const error = await refused(verifier, token, "unsupported_algorithm");
    assert.equal(error.message, "token algorithm HS256 is not allowed");
  });

  it("refuses a token signed by a foreign key under the provider's key id", async () => {
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const error = await refused(verifier, await idp.sign({ sub: "x" }, { key: privateKey }), "bad_signature");
    assert.equal(error.message, "token signature is invalid");
  });

  it("refuses a password that is not a token", async () => {
    for (const password of ["hunter2", "a.b.c", "", "eyJhbGciOiJub25lIn0"]) {
      const error = await refused(verifier, password, "malformed");
      assert.equal(error.message, "password is not a token");
    }
  });

  it("refuses a token without an expiry", async () => {
    const error = await refused(verifier, await idp.sign({ sub: "x", exp: undefined }), "malformed");
    assert.equal(error.message, "token has no expiry");
  });

  it("rejects with the signal's reason when aborted", async () => {
    const reason = new Error("client went away");
    await assert.rejects(verifier.verify(await idp.token("agent-a"), AbortSignal.abort(reason)), reason);
  });
});

describe("keys that change at the provider", { timeout: 30_000 }, () => {
  let idp: OidcProviderInstance;
  let verifier: TokenVerifier;
  before(async () => {
    idp = await startOidcProvider({
      audience: AUDIENCE,
      clients: [{ clientId: "agent-a", clientSecret: "secret-a", groups: [] }],
    });
    verifier = await createTokenVerifier({
      issuer: idp.issuer,
      audience: AUDIENCE,
      groupsClaim: "groups",
      allowInsecureLoopbackIssuer: true,
      jwksRefreshCooldownSeconds: 1,
    });
  });
  after(() => idp.stop());

  it("accepts a token signed with a rotated key, with the same verifier (no restart)", async () => {
    const old = await idp.token("agent-a");
    await verifier.verify(old); // the JWKS is fetched and cached now
    await idp.rotateKeys();
    const fresh = await idp.token("agent-a");
    assert.notEqual(JSON.parse(Buffer.from(fresh.split(".")[0]!, "base64url").toString()).kid, undefined);
    assert.equal((await verifier.verify(fresh)).subject, "agent-a");
    assert.equal((await verifier.verify(old)).subject, "agent-a", "the old key is still published");
  });

  it("refuses tokens of a key the provider dropped, once it has refetched the JWKS", async () => {
    const old = await idp.token("agent-a");
    await idp.rotateKeys({ dropOld: true });
    await verifier.verify(await idp.token("agent-a"));
    const error = await refused(verifier, old, "bad_signature");
    assert.equal(error.message, "token is not signed by any of the issuer's keys");
  });

  it("refuses tokens of unknown keys, fetching the JWKS at most once per cooldown however many arrive", async () => {
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const fetchesBefore = idp.requestCount("/jwks");
    const tokens = await Promise.all(
      Array.from({ length: 20 }, (_, i) => idp.sign({ sub: "x" }, { key: privateKey, kid: `unknown-${i}` })),
    );
    await Promise.all(tokens.map((token) => refused(verifier, token, "bad_signature")));
    assert.ok(idp.requestCount("/jwks") - fetchesBefore <= 2, `${idp.requestCount("/jwks") - fetchesBefore} fetches`);
  });
});

describe("groups from a dotted path", { timeout: 30_000 }, () => {
  it("reads realm_access.roles", async (t) => {
    const idp = await startOidcProvider({
      audience: AUDIENCE,
      groupsClaim: "realm_access.roles",
      clients: [{ clientId: "svc", clientSecret: "s", groups: ["db-admin", "db-reader"] }],
    });
    t.after(() => idp.stop());
    const verifier = await createTokenVerifier({
      issuer: idp.issuer,
      audience: AUDIENCE,
      groupsClaim: "realm_access.roles",
      allowInsecureLoopbackIssuer: true,
    });
    const token = await idp.token("svc");
    assert.deepEqual(payloadOf(token).realm_access, { roles: ["db-admin", "db-reader"] });
    assert.deepEqual((await verifier.verify(token)).groups, ["db-admin", "db-reader"]);
  });
});

describe("an unavailable provider", { timeout: 30_000 }, () => {
  it("refuses with unavailable when the JWKS cannot be fetched", async () => {
    const idp = await startOidcProvider({ audience: AUDIENCE });
    const verifier = await createTokenVerifier({
      issuer: idp.issuer,
      audience: AUDIENCE,
      groupsClaim: "groups",
      allowInsecureLoopbackIssuer: true,
    });
    const token = await idp.token("agent");
    await idp.stop();
    const error = await refused(verifier, token, "unavailable");
    assert.equal(error.message, "identity provider is unavailable");
  });

  it("fails creation when discovery fails, naming the issuer option", async () => {
    const idp = await startOidcProvider();
    await idp.stop();
    await assert.rejects(
      createTokenVerifier({
        issuer: idp.issuer,
        audience: AUDIENCE,
        groupsClaim: "g",
        allowInsecureLoopbackIssuer: true,
      }),
      (error: unknown) =>
        error instanceof IdentityConfigError &&
        error.code === "discovery_failed" &&
        error.key === "issuer" &&
        /^issuer: OIDC discovery failed: fetch failed \(ECONNREFUSED\)$/.test(error.message),
    );
  });
});

describe("options", () => {
  const base = { audience: AUDIENCE, groupsClaim: "groups" };
  const invalid = (key: string, message: RegExp) => (error: unknown) =>
    error instanceof IdentityConfigError &&
    error.code === "invalid_option" &&
    error.key === key &&
    message.test(error.message);

  it("refuses http issuers except on loopback, and there only when allowed", async () => {
    await assert.rejects(
      createTokenVerifier({ ...base, issuer: "http://idp.example.com", allowInsecureLoopbackIssuer: true }),
      invalid("issuer", /only on a loopback address/),
    );
    await assert.rejects(
      createTokenVerifier({ ...base, issuer: "http://127.0.0.1:1" }),
      invalid("issuer", /needs allowInsecureLoopbackIssuer/),
    );
    await assert.rejects(createTokenVerifier({ ...base, issuer: "not a url" }), invalid("issuer", /not a URL/));
  });

  it("refuses symmetric algorithms and none in the allow-list", async () => {
    for (const algorithm of ["HS256", "none"]) {
      await assert.rejects(
        createTokenVerifier({ ...base, issuer: "https://idp.example.com", algorithms: ["ES256", algorithm] }),
        invalid("algorithms", /not an asymmetric signature algorithm/),
      );
    }
  });

  it("refuses an empty audience and groups claim", async () => {
    const issuer = "https://idp.example.com";
    await assert.rejects(createTokenVerifier({ ...base, issuer, audience: [] }), invalid("audience", /non-empty/));
    await assert.rejects(createTokenVerifier({ ...base, issuer, groupsClaim: "" }), invalid("groupsClaim", /claim/));
  });
});
