import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createTokenVerifier, type TokenVerifier } from "@agentgate/identity";
import { freePort, type OidcProviderInstance, startOidcProvider } from "@agentgate/testkit";
import { agentgate } from "./testing.ts";

const AUDIENCE = "urn:agentgate:test";
const SECRET = "s3cr3t-do-not-print";

describe("agentgate token", { timeout: 60_000 }, () => {
  let idp: OidcProviderInstance;
  let verifier: TokenVerifier;
  before(async () => {
    idp = await startOidcProvider({
      audience: AUDIENCE,
      scopes: ["sql", "admin"],
      clients: [{ clientId: "agent-cli", clientSecret: SECRET, groups: ["cli-users"] }],
    });
    verifier = await createTokenVerifier({
      issuer: idp.issuer,
      audience: AUDIENCE,
      groupsClaim: "groups",
      allowInsecureLoopbackIssuer: true,
    });
  });
  after(() => idp.stop());

  it("prints just a token, and the gateway's verifier accepts it", async () => {
    const r = await agentgate(["token", "--issuer", idp.issuer, "--client-id", "agent-cli", "--audience", AUDIENCE], {
      AGENTGATE_CLIENT_SECRET: SECRET,
    });
    assert.equal(r.stderr, "");
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    const principal = await verifier.verify(r.stdout.trim());
    assert.equal(principal.clientId, "agent-cli");
    assert.deepEqual(principal.groups, ["cli-users"]);
  });

  it("takes the secret from --client-secret and passes --scope", async () => {
    const r = await agentgate([
      "token",
      "--issuer",
      idp.issuer,
      "--client-id",
      "agent-cli",
      "--client-secret",
      SECRET,
      "--audience",
      AUDIENCE,
      "--scope",
      "sql",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const payload = JSON.parse(Buffer.from(r.stdout.split(".")[1]!, "base64url").toString());
    assert.equal(payload.scope, "sql");
  });

  it("reports a wrong secret in one line, exit code 1, without the secret", async () => {
    const wrong = "wrong-secret-value";
    const r = await agentgate(["token", "--issuer", idp.issuer, "--client-id", "agent-cli"], {
      AGENTGATE_CLIENT_SECRET: wrong,
    });
    assert.equal(r.code, 1);
    assert.equal(r.stdout, "");
    assert.equal(r.stderr.split("\n").length, 2, `one line: ${JSON.stringify(r.stderr)}`);
    assert.match(r.stderr, /^agentgate token: the identity provider refused the client credentials: invalid_client/);
    assert.ok(!r.stderr.includes(wrong) && !r.stderr.includes(SECRET));
  });

  it("reports an unreachable issuer in one line, exit code 1", async () => {
    const issuer = `http://127.0.0.1:${await freePort()}`;
    const r = await agentgate(["token", "--issuer", issuer, "--client-id", "x"], { AGENTGATE_CLIENT_SECRET: SECRET });
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `agentgate token: discovery at ${issuer}/ failed: fetch failed (ECONNREFUSED)\n`);
  });

  it("refuses usage errors with exit code 2", async () => {
    const cases: [string[], RegExp][] = [
      [["token"], /--issuer URL is required/],
      [["token", "--issuer", idp.issuer], /--client-id ID is required/],
      [
        ["token", "--issuer", idp.issuer, "--client-id", "a"],
        /no client secret: pass --client-secret or set AGENTGATE_CLIENT_SECRET/,
      ],
      [
        ["token", "--issuer", "http://idp.example.com", "--client-id", "a", "--client-secret", "s"],
        /--issuer: must use https/,
      ],
      [
        ["token", "--issuer", idp.issuer, "--client-id", "a", "--client-secret", "s", "--audience", "agentgate"],
        /--audience must be an absolute URI/,
      ],
      [
        ["token", "--issuer", idp.issuer, "--client-id", "a", "--client-secret", "s", SECRET],
        /^agentgate token: unexpected argument: only options\n$/,
      ],
      [["token", "--bogus"], /Unknown option '--bogus'/],
    ];
    for (const [args, message] of cases) {
      const r = await agentgate(args);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.ok(!r.stderr.includes(SECRET));
    }
  });

  it("prints its usage with --help", async () => {
    const r = await agentgate(["token", "--help"]);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^usage: agentgate token --issuer URL --client-id ID/);
  });
});
