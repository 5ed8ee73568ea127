import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type OidcProviderInstance, startOidcProvider } from "@agentgate/testkit";
import { SignInError } from "./errors.ts";
import { checkIntrospected } from "./introspection.ts";
import { createTokenVerifier, type TokenVerifier } from "./verifier.ts";

const AUDIENCE = "agentgate";

describe("opaque tokens, checked by introspection", { timeout: 30_000 }, () => {
  let idp: OidcProviderInstance;
  let verifier: TokenVerifier;
  before(async () => {
    idp = await startOidcProvider({
      audience: AUDIENCE,
      clients: [
        { clientId: "agent-o", clientSecret: "secret-o", groups: ["ops"], accessTokenFormat: "opaque" },
        { clientId: "agent-j", clientSecret: "secret-j", groups: ["jwt"] },
        { clientId: "gateway", clientSecret: "gateway-secret", groups: [] },
      ],
    });
    verifier = await createTokenVerifier({
      issuer: idp.issuer,
      audience: AUDIENCE,
      groupsClaim: "groups",
      introspection: { clientId: "gateway", clientSecret: "gateway-secret" },
      allowInsecureLoopbackIssuer: true,
    });
  });
  after(() => idp.stop());

  it("accepts an active opaque token, the client being the subject", async () => {
    const token = await idp.token("agent-o");
    assert.equal(token.split(".").length, 1, "the token is opaque");
    const principal = await verifier.verify(token);
    assert.equal(principal.subject, "agent-o");
    assert.equal(principal.clientId, "agent-o");
    assert.equal(principal.issuer, idp.issuer);
    assert.deepEqual(principal.groups, ["ops"]);
    assert.ok(principal.expiresAt > Date.now() / 1000 && principal.expiresAt <= Date.now() / 1000 + 300);
  });

  it("refuses a revoked token and garbage as inactive", async () => {
    const token = await idp.token("agent-o");
    await verifier.verify(token);
    await idp.revoke("agent-o", token);
    for (const password of [token, "hunter2"]) {
      await assert.rejects(verifier.verify(password), {
        name: "SignInError",
        reason: "inactive",
        message: "token is not active",
      });
    }
  });

  it("still checks JWTs locally, without asking the provider", async () => {
    const before = idp.requestCount("/token/introspection");
    assert.deepEqual((await verifier.verify(await idp.token("agent-j"))).groups, ["jwt"]);
    assert.equal(idp.requestCount("/token/introspection"), before);
  });

  it("refuses with unavailable when the gateway's own credentials are wrong, without saying more", async () => {
    const misconfigured = await createTokenVerifier({
      issuer: idp.issuer,
      audience: AUDIENCE,
      groupsClaim: "groups",
      introspection: { clientId: "gateway", clientSecret: "wrong" },
      allowInsecureLoopbackIssuer: true,
    });
    const error = await misconfigured.verify(await idp.token("agent-o")).catch((e: unknown) => e);
    assert.ok(error instanceof SignInError);
    assert.equal(error.reason, "unavailable");
    assert.equal(error.message, "identity provider is unavailable");
    assert.ok(error.cause !== undefined, "the cause is kept for the logs");
  });
});

describe("checkIntrospected", () => {
  const expected = {
    issuer: "https://idp",
    audiences: ["agentgate"],
    groupsClaim: "groups",
    clockToleranceSeconds: 30,
  };
  const active = { active: true, iss: "https://idp", aud: "agentgate", exp: 1_000, client_id: "c" };
  const reason = (response: Record<string, unknown>) => {
    try {
      checkIntrospected(response, expected, 900);
      return "accepted";
    } catch (error) {
      return error instanceof SignInError ? error.reason : String(error);
    }
  };

  it("holds an active answer to the checks a JWT gets", () => {
    assert.equal(reason(active), "accepted");
    assert.equal(reason({ ...active, aud: ["x", "agentgate"] }), "accepted");
    assert.equal(reason({ ...active, iss: undefined }), "accepted");
    assert.equal(reason({ ...active, active: false }), "inactive");
    assert.equal(reason({ ...active, active: "true" }), "inactive");
    assert.equal(reason({ ...active, iss: "https://other" }), "wrong_issuer");
    assert.equal(reason({ ...active, aud: "other" }), "wrong_audience");
    assert.equal(reason({ ...active, aud: undefined }), "wrong_audience");
    assert.equal(reason({ ...active, exp: 860 }), "expired");
    assert.equal(reason({ ...active, exp: 880 }), "accepted");
    assert.equal(reason({ ...active, nbf: 940 }), "not_yet_valid");
  });
});
