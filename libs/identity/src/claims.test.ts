import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { claimAt, groupsFrom, principalFrom } from "./claims.ts";
import { SignInError } from "./errors.ts";

describe("claimAt", () => {
  const claims = {
    groups: ["a"],
    realm_access: { roles: ["admin", "reader"] },
    "https://agentgate.example/groups": ["namespaced"],
    deep: { list: [{ x: 1 }] },
  };

  it("reads a top-level claim and a dotted path", () => {
    assert.deepEqual(claimAt(claims, "groups"), ["a"]);
    assert.deepEqual(claimAt(claims, "realm_access.roles"), ["admin", "reader"]);
  });

  it("reads a claim whose name contains dots (namespaced claims) as one name", () => {
    assert.deepEqual(claimAt(claims, "https://agentgate.example/groups"), ["namespaced"]);
  });

  it("is undefined for a missing path or one that runs through a non-object", () => {
    assert.equal(claimAt(claims, "realm_access.missing"), undefined);
    assert.equal(claimAt(claims, "groups.0"), undefined);
    assert.equal(claimAt(claims, "nope.deeper"), undefined);
    assert.equal(claimAt(claims, "toString"), undefined);
  });
});

describe("groupsFrom", () => {
  it("takes an array of strings, dropping anything else, blanks and duplicates", () => {
    assert.deepEqual(groupsFrom(["a", 1, null, "b", " ", "a", { c: 1 }]), ["a", "b"]);
  });

  it("splits a string on spaces and commas", () => {
    assert.deepEqual(groupsFrom("a b,c ,, d"), ["a", "b", "c", "d"]);
  });

  it("gives no groups for a missing or odd claim", () => {
    assert.deepEqual(groupsFrom(undefined), []);
    assert.deepEqual(groupsFrom(42), []);
    assert.deepEqual(groupsFrom({ a: ["b"] }), []);
  });
});

describe("principalFrom", () => {
  it("takes subject, client id (client_id, else azp), expiry and groups", () => {
    assert.deepEqual(principalFrom({ sub: "u1", azp: "cli", exp: 100, roles: "x y" }, "https://idp", "roles"), {
      subject: "u1",
      groups: ["x", "y"],
      issuer: "https://idp",
      clientId: "cli",
      expiresAt: 100,
    });
    assert.equal(principalFrom({ sub: "u", client_id: "a", azp: "b", exp: 1 }, "i", "g").clientId, "a");
  });

  it("uses the client as the subject when there is no sub (client-credentials introspection)", () => {
    assert.equal(principalFrom({ client_id: "svc", exp: 1 }, "i", "g").subject, "svc");
  });

  it("refuses claims without subject or expiry as malformed", () => {
    assert.throws(() => principalFrom({ exp: 1 }, "i", "g"), { name: "SignInError", reason: "malformed" });
    assert.throws(
      () => principalFrom({ sub: "u" }, "i", "g"),
      (error: unknown) => error instanceof SignInError && error.message === "token has no expiry",
    );
  });
});
