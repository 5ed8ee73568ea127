import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RulesError } from "./errors.ts";
import { canonicalRules, parseRules, parseRulesYaml, policyServiceSchema } from "./rules.ts";

function rejects(
  fn: () => unknown,
  expected: { key: string; rule?: { index: number; name?: string }; reason: RegExp; message?: RegExp },
) {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof RulesError, `expected a RulesError, got ${error}`);
    const issue = error.issues.find((i) => i.key === expected.key);
    assert.ok(issue, `no issue at ${expected.key}: ${JSON.stringify(error.issues)}`);
    assert.deepEqual(issue.rule, expected.rule);
    assert.match(issue.reason, expected.reason);
    if (expected.message) assert.match(error.message, expected.message);
    return true;
  });
}

describe("rules", () => {
  it("parses a rules file, applying nothing it was not told", () => {
    const rules = parseRulesYaml(
      `
rules:
  - name: analysts-read        # comments are fine
    match: { groups: [analysts], classes: [read, copy-out] }
    effect: allow
  - name: approve-writes
    match: { classes: [write], relations: ["public.orders", "audit.*"] }
    effect: require_approval
    approvers: [dba]
`,
      "rules.yaml",
    );
    assert.equal(rules.length, 2);
    assert.deepEqual(rules[0], {
      name: "analysts-read",
      match: { groups: ["analysts"], classes: ["read", "copy-out"] },
      effect: "allow",
    });
    assert.deepEqual(rules[1]?.approvers, ["dba"]);
  });

  it("names the rule and the key of an unknown class", () => {
    rejects(
      () =>
        parseRules([
          { name: "ok", effect: "allow" },
          { name: "writers", match: { classes: ["read", "wirte"] }, effect: "allow" },
        ]),
      {
        key: "rules[1].match.classes[1]",
        rule: { index: 1, name: "writers" },
        reason: /expected one of "read"\|"transaction"/,
        message: /^rules\[1\] "writers": match\.classes\[1\]: Invalid option/,
      },
    );
  });

  it("refuses a duplicate name, pointing at the first use", () => {
    rejects(
      () =>
        parseRules([
          { name: "a", effect: "allow" },
          { name: "b", effect: "deny" },
          { name: "a", effect: "deny" },
        ]),
      {
        key: "rules[2].name",
        rule: { index: 2, name: "a" },
        reason: /duplicate rule name \(first used by rules\[0\]\)/,
      },
    );
  });

  it("requires approvers for require_approval and refuses them elsewhere", () => {
    rejects(() => parseRules([{ name: "x", effect: "require_approval" }]), {
      key: "rules[0].approvers",
      rule: { index: 0, name: "x" },
      reason: /required for require_approval/,
    });
    rejects(() => parseRules([{ name: "x", effect: "allow", approvals: 2 }]), {
      key: "rules[0].approvals",
      rule: { index: 0, name: "x" },
      reason: /only applies to require_approval, not allow/,
    });
  });

  it("refuses unknown keys, empty lists, a missing effect and a nameless rule", () => {
    rejects(() => parseRules([{ name: "x", effect: "allow", match: { group: ["a"] } }]), {
      key: "rules[0].match",
      rule: { index: 0, name: "x" },
      reason: /Unrecognized key: "group"/,
    });
    rejects(() => parseRules([{ name: "x", effect: "allow", match: { groups: [] } }]), {
      key: "rules[0].match.groups",
      rule: { index: 0, name: "x" },
      reason: /empty list matches nothing/,
    });
    rejects(() => parseRules([{ name: "x" }]), {
      key: "rules[0].effect",
      rule: { index: 0, name: "x" },
      reason: /Invalid option/,
    });
    rejects(() => parseRules([{ effect: "allow" }]), {
      key: "rules[0].name",
      rule: { index: 0 },
      reason: /expected string/,
    });
    rejects(() => parseRules([{ name: "x", effect: "allow", match: { relations: ["public..orders"] } }]), {
      key: "rules[0].match.relations[0]",
      rule: { index: 0, name: "x" },
      reason: /relation pattern/,
    });
  });

  it("reports bad YAML with its position, an empty file, and a document without rules", () => {
    rejects(() => parseRulesYaml("rules:\n  - name: x\n   effect: allow\n", "r.yaml"), {
      key: "",
      reason: /^not valid YAML: .* at line 3, column \d+$/,
      message: /^r\.yaml: not valid YAML/,
    });
    rejects(() => parseRulesYaml(""), { key: "", reason: /no rules/ });
    rejects(() => parseRulesYaml("rule: []\n"), { key: "", reason: /Unrecognized key: "rule"/ });
    rejects(() => parseRulesYaml("rules: {}\n"), { key: "rules", reason: /expected array/ });
  });

  it("has one canonical form whatever the key order or formatting", () => {
    const a = parseRulesYaml("rules:\n  - { name: x, effect: allow, match: { targets: [app], groups: [g] } }\n");
    const b = parseRulesYaml(
      "rules:\n  - effect: allow\n    match:\n      groups: [g]\n      targets: [app]\n    name: x\n",
    );
    assert.equal(canonicalRules(a), canonicalRules(b));
    assert.notEqual(canonicalRules(a), canonicalRules(parseRulesYaml("rules:\n  - { name: y, effect: allow }\n")));
  });
});

describe("policy service section", () => {
  it("takes inline rules or a rules file, with a default listen address", () => {
    const section = policyServiceSchema.parse({ rulesFile: "./rules.yaml" });
    assert.deepEqual(section, { listen: "127.0.0.1:7070", rulesFile: "./rules.yaml" });
    assert.equal(policyServiceSchema.parse({ listen: "[::1]:0", rules: [] }).listen, "[::1]:0");
  });

  it("wants exactly one of rules and rulesFile, and valid rules", () => {
    assert.match(policyServiceSchema.safeParse({}).error?.issues[0]?.message ?? "", /expected rules or rulesFile/);
    assert.match(
      policyServiceSchema.safeParse({ rules: [], rulesFile: "x" }).error?.issues[0]?.message ?? "",
      /not both/,
    );
    const bad = policyServiceSchema.safeParse({ rules: [{ name: "x", effect: "permit" }] });
    assert.deepEqual(bad.error?.issues[0]?.path, ["rules", 0, "effect"]);
  });
});
