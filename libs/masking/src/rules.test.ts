import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MaskingError } from "./errors.ts";
import { type MaskRule, masksFor, parseMaskRules } from "./rules.ts";

function rejects(input: unknown, key: string, reason: RegExp) {
  assert.throws(
    () => parseMaskRules(input),
    (error: unknown) => {
      assert.ok(error instanceof MaskingError, String(error));
      assert.equal(error.code, "invalid_rules");
      const issue = error.issues.find((i) => i.key === key);
      assert.ok(issue, `no issue at ${key}: ${JSON.stringify(error.issues)}`);
      assert.match(issue.reason, reason);
      return true;
    },
  );
}

describe("rules: parsing", () => {
  it("given valid rules, when parsed, then they come back as written", () => {
    const rules = parseMaskRules([
      { column: "public.customers.email", strategy: "partial", keep: 6 },
      { column: "*.*.ssn", strategy: "hash", groups: { unmasked: ["hr"] } },
      { column: "app.cards.*", strategy: "null" },
    ]);
    assert.equal(rules.length, 3);
    assert.deepEqual(rules[1], { column: "*.*.ssn", strategy: "hash", groups: { unmasked: ["hr"] } });
  });

  it("given a column that is not schema.table.column, then the key and the reason", () => {
    rejects([{ column: "customers.email", strategy: "redact" }], "[0].column", /schema\.table\.column/);
    rejects([{ column: "a.b.c.d", strategy: "redact" }], "[0].column", /schema\.table\.column/);
    rejects([{ column: "a. b.c", strategy: "redact" }], "[0].column", /schema\.table\.column/);
  });

  it("given an unknown strategy, keep outside partial, an unknown key or an empty group list, then each is named", () => {
    rejects([{ column: "a.b.c", strategy: "scramble" }], "[0].strategy", /redact/);
    rejects([{ column: "a.b.c", strategy: "hash", keep: 4 }], "[0].keep", /only applies to partial/);
    rejects([{ column: "a.b.c", strategy: "redact", who: "x" }], "[0]", /who/);
    rejects([{ column: "a.b.c", strategy: "redact", groups: { unmasked: [] } }], "[0].groups.unmasked", /empty/);
    rejects([{ column: "a.b.c", strategy: "partial", keep: 0 }], "[0].keep", />=1|too small/i);
  });

  it("given a message about invalid rules, then it names the key, never a value", () => {
    assert.throws(
      () => parseMaskRules([{ column: "secret-value", strategy: "redact" }]),
      (error: unknown) => {
        assert.ok(error instanceof MaskingError);
        assert.doesNotMatch(error.message, /secret-value/);
        assert.match(error.message, /\[0\]\.column/);
        return true;
      },
    );
  });
});

describe("rules: masksFor", () => {
  const rules: MaskRule[] = [
    { column: "public.customers.email", strategy: "partial" },
    { column: "*.*.ssn", strategy: "hash", groups: { unmasked: ["hr"] } },
    { column: "public.cust*.card_*", strategy: "redact" },
    { column: "hr.*.ssn", strategy: "null" },
  ];

  it("given a principal in no exempt group, when a matching column is asked, then its mask", () => {
    const masks = masksFor(rules, ["analysts"]);
    assert.equal(masks.empty, false);
    assert.deepEqual(masks.strategyFor("public", "customers", "email"), {
      strategy: "partial",
      keep: 4,
      rule: "public.customers.email",
    });
    assert.equal(masks.strategyFor("sales", "leads", "ssn")?.strategy, "hash");
    assert.equal(masks.strategyFor("public", "customers_eu", "card_number")?.strategy, "redact");
  });

  it("given a column no rule matches, then undefined: clear", () => {
    const masks = masksFor(rules, []);
    assert.equal(masks.strategyFor("public", "customers", "name"), undefined);
    assert.equal(masks.strategyFor("public", "orders", "card_number"), undefined);
  });

  it("given names in another case, then no match: names are compared as the catalog spells them", () => {
    assert.equal(masksFor(rules, []).strategyFor("public", "Customers", "email"), undefined);
  });

  it("given a principal in an unmasked group, then that rule does not apply to them", () => {
    assert.equal(masksFor(rules, ["hr"]).strategyFor("sales", "leads", "ssn"), undefined);
  });

  it("given an exemption from one rule, then another rule covering the column still applies", () => {
    assert.equal(masksFor(rules, ["hr"]).strategyFor("hr", "staff", "ssn")?.strategy, "null");
  });

  it("given several matching rules, then the strictest wins: null > redact > hash > partial", () => {
    assert.equal(masksFor(rules, []).strategyFor("hr", "staff", "ssn")?.strategy, "null");
    const masks = masksFor(
      [
        { column: "a.b.*", strategy: "partial", keep: 6 },
        { column: "a.*.c", strategy: "partial", keep: 2 },
        { column: "*.b.c", strategy: "hash" },
        { column: "a.b.d", strategy: "partial" },
        { column: "a.b.d", strategy: "redact" },
      ],
      [],
    );
    assert.equal(masks.strategyFor("a", "b", "c")?.strategy, "hash");
    assert.equal(masks.strategyFor("a", "b", "d")?.strategy, "redact");
    assert.equal(masks.strategyFor("a", "b", "e")?.keep, 6);
    assert.deepEqual(
      masksFor([rules[0]!, { column: "public.*.email", strategy: "partial", keep: 2 }], []).strategyFor(
        "public",
        "customers",
        "email",
      ),
      {
        strategy: "partial",
        keep: 2,
        rule: "public.*.email",
      },
    );
  });

  it("given equally strict rules, then the first written is reported", () => {
    const masks = masksFor(
      [
        { column: "a.*.c", strategy: "redact" },
        { column: "a.b.*", strategy: "redact" },
      ],
      [],
    );
    assert.equal(masks.strategyFor("a", "b", "c")?.rule, "a.*.c");
  });

  it("given no rules that apply to the principal, then empty", () => {
    assert.equal(masksFor([], ["x"]).empty, true);
    assert.equal(masksFor([{ column: "a.b.c", strategy: "redact", groups: { unmasked: ["x"] } }], ["x"]).empty, true);
  });

  it("given patterns with regex characters, then they are literal", () => {
    const masks = masksFor([{ column: "a.b+c.(d)", strategy: "redact" }], []);
    assert.equal(masks.strategyFor("a", "b+c", "(d)")?.strategy, "redact");
    assert.equal(masks.strategyFor("a", "bbc", "d"), undefined);
  });
});
