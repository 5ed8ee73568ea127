import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type OidcProviderInstance, startOidcProvider } from "./oidc.ts";
import { acceptsConnections } from "./ports.ts";

function decode(token: string): { header: Record<string, unknown>; payload: Record<string, unknown> } {
  const [header = "", payload = ""] = token.split(".");
  const json = (part: string) => JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
  return { header: json(header), payload: json(payload) };
}

describe("startOidcProvider", { timeout: 30_000 }, () => {
  let idp: OidcProviderInstance;
  before(async () => {
    idp = await startOidcProvider({
      clients: [
        { clientId: "agent-a", clientSecret: "secret-a", groups: ["analysts", "readers"] },
        { clientId: "agent-o", clientSecret: "secret-o", groups: ["opaque"], accessTokenFormat: "opaque" },
      ],
    });
  });
  after(() => idp.stop());

  it("serves discovery on loopback http with the endpoints a verifier needs", async () => {
    assert.equal(idp.issuer, `http://127.0.0.1:${idp.port}`);
    const metadata = (await (await fetch(`${idp.issuer}/.well-known/openid-configuration`)).json()) as Record<
      string,
      unknown
    >;
    assert.equal(metadata.issuer, idp.issuer);
    assert.equal(metadata.jwks_uri, `${idp.issuer}/jwks`);
    assert.equal(metadata.introspection_endpoint, `${idp.issuer}/token/introspection`);
    assert.ok((metadata.grant_types_supported as string[]).includes("client_credentials"));
  });

  it("issues ES256 JWT access tokens for the audience with the client's groups, by client credentials", async () => {
    const { header, payload } = decode(await idp.token("agent-a"));
    assert.deepEqual(header, { alg: "ES256", typ: "at+jwt", kid: idp.currentKid });
    assert.equal(payload.iss, idp.issuer);
    assert.equal(payload.aud, "agentgate");
    assert.equal(payload.sub, "agent-a");
    assert.equal(payload.client_id, "agent-a");
    assert.deepEqual(payload.groups, ["analysts", "readers"]);
    assert.equal((payload.exp as number) - (payload.iat as number), 300);
  });

  it("issues opaque tokens to a client configured so", async () => {
    const token = await idp.token("agent-o");
    assert.equal(token.split(".").length, 1);
  });

  it("refuses an unknown client before any request", async () => {
    await assert.rejects(idp.token("nobody"), /no OIDC client "nobody"/);
  });

  it("rotates keys: new tokens name the new key; the old stays published unless dropped", async () => {
    const first = idp.currentKid;
    await idp.rotateKeys();
    const second = idp.currentKid;
    assert.notEqual(second, first);
    assert.equal(decode(await idp.token("agent-a")).header.kid, second);
    const published = async () =>
      ((await (await fetch(`${idp.issuer}/jwks`)).json()) as { keys: { kid: string; d?: string }[] }).keys;
    assert.deepEqual(
      (await published()).map((key) => key.kid),
      [second, first],
    );
    assert.ok(
      (await published()).every((key) => key.d === undefined),
      "no private members are published",
    );
    assert.deepEqual(
      idp.publicJwks().keys.map((key) => key.kid),
      [second, first],
    );
    await idp.rotateKeys({ dropOld: true });
    assert.deepEqual(
      (await published()).map((key) => key.kid),
      [idp.currentKid],
    );
  });

  it("signs crafted tokens over defaults, leaving out claims set to undefined", async () => {
    const { header, payload } = decode(await idp.sign({ sub: "crafted", exp: undefined, groups: ["x"] }));
    assert.equal(header.kid, idp.currentKid);
    assert.equal(payload.iss, idp.issuer);
    assert.equal(payload.aud, "agentgate");
    assert.equal(payload.sub, "crafted");
    assert.equal("exp" in payload, false);
    const unsigned = await idp.sign({}, { alg: "none", kid: undefined });
    assert.ok(unsigned.endsWith("."));
    assert.deepEqual(decode(unsigned).header, { alg: "none", typ: "at+jwt" });
  });

  it("counts requests per path", async () => {
    const before = idp.requestCount("/jwks");
    await fetch(`${idp.issuer}/jwks`);
    assert.equal(idp.requestCount("/jwks"), before + 1);
  });

  it("stops listening on stop(), which may be called twice", async () => {
    const other = await startOidcProvider();
    await Promise.all([other.stop(), other.stop()]);
    assert.equal(await acceptsConnections(other.port), false);
  });
});
