import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  compilePolicy,
  type DecideInput,
  type Decision,
  decide,
  type Policy,
  readOnly,
  type StatementFacts,
} from "./decide.ts";
import { parseRules } from "./rules.ts";

// Given these rules...
function given(rules: unknown[]): Policy {
  return compilePolicy(parseRules(rules), "rev-test");
}

const analyst = { subject: "agent-7", groups: ["analysts"] };
const dba = { subject: "dba-bot", groups: ["dba", "analysts"] };
const stranger = { subject: "nobody", groups: [] };

const select = (...reads: string[]): StatementFacts => ({ class: "read", classes: ["read"], reads });
const insert = (table: string, ...reads: string[]): StatementFacts => ({
  class: "write",
  classes: reads.length > 0 ? ["read", "write"] : ["write"],
  reads,
  writes: [table],
});

// ...when this principal sends these statements to this target...
function when(policy: Policy, input: Partial<DecideInput> & Pick<DecideInput, "statements">): Decision {
  return decide(policy, { principal: analyst, target: "app", ...input });
}

// ...then this is the decision.
function then(decision: Decision, expected: Partial<Decision>): void {
  const actual = Object.fromEntries(Object.keys(expected).map((key) => [key, decision[key as keyof Decision]]));
  assert.deepEqual(actual, expected, `decision was ${JSON.stringify(decision)}`);
}

const readOnlyForAnalysts = {
  name: "analysts-read",
  match: { groups: ["analysts"], classes: ["read", "transaction", "session"] },
  effect: "allow",
};

describe("decide", () => {
  it("allows what a matching rule allows, naming the rule", () => {
    const policy = given([readOnlyForAnalysts]);
    then(when(policy, { statements: [select("orders")] }), {
      effect: "allow",
      rule: "analysts-read",
      reason: 'rule "analysts-read" allows read on app',
      approverGroups: [],
      approvalsRequired: 0,
    });
  });

  it("denies by default, saying which class nothing allows", () => {
    const policy = given([readOnlyForAnalysts]);
    then(when(policy, { statements: [insert("orders")] }), {
      effect: "deny",
      rule: undefined,
      reason: "no rule allows write on app",
    });
    then(when(policy, { principal: stranger, statements: [select("orders")] }), {
      effect: "deny",
      reason: "no rule allows read on app",
    });
    then(decide(given([]), { principal: dba, target: "app", statements: [select("t")] }), { effect: "deny" });
  });

  it("lets deny win over require_approval, and require_approval over allow, whatever the order", () => {
    const allowAll = { name: "allow-all", effect: "allow" };
    const approveWrites = {
      name: "approve-writes",
      match: { classes: ["write"] },
      effect: "require_approval",
      approvers: ["dba"],
      approvals: 2,
      reason: "writes need a DBA's approval",
    };
    const denyAudit = { name: "deny-audit", match: { relations: ["audit.*"] }, effect: "deny" };
    const policy = given([allowAll, approveWrites, denyAudit]);

    then(when(policy, { statements: [select("orders")] }), { effect: "allow", rule: "allow-all" });
    then(when(policy, { statements: [insert("orders")] }), {
      effect: "require_approval",
      rule: "approve-writes",
      reason: "writes need a DBA's approval",
      approverGroups: ["dba"],
      approvalsRequired: 2,
    });
    then(when(policy, { statements: [insert("audit.log")] }), {
      effect: "deny",
      rule: "deny-audit",
      reason: 'rule "deny-audit" denies write on app',
    });
    then(when(given([denyAudit, approveWrites, allowAll]), { statements: [insert("audit.log")] }), {
      effect: "deny",
      rule: "deny-audit",
    });
  });

  it("reports the first rule in file order among rules of the same effect", () => {
    const policy = given([
      { name: "first", match: { groups: ["analysts"] }, effect: "allow" },
      { name: "second", match: { subjects: ["agent-7"] }, effect: "allow" },
    ]);
    then(when(policy, { statements: [select("orders")] }), { rule: "first" });
  });

  it("requires every given criterion and any element within a list", () => {
    const policy = given([
      {
        name: "reporting",
        match: {
          groups: ["finance", "analysts"],
          targets: ["reporting", "app"],
          classes: ["read"],
          relations: ["orders"],
        },
        effect: "allow",
      },
    ]);
    then(when(policy, { statements: [select("orders")] }), { effect: "allow" });
    then(when(policy, { target: "billing", statements: [select("orders")] }), { effect: "deny" });
    then(when(policy, { principal: stranger, statements: [select("orders")] }), { effect: "deny" });
    then(when(policy, { statements: [select("customers")] }), { effect: "deny" });
    then(when(policy, { statements: [select()] }), { effect: "deny", reason: "no rule allows read on app" });
  });

  it("matches relation globs with or without a schema", () => {
    const policy = given([
      { name: "orders", match: { relations: ["orders"] }, effect: "allow" },
      { name: "audit", match: { relations: ["audit.*"] }, effect: "deny" },
      { name: "staging", match: { relations: ["stg_*"] }, effect: "require_approval", approvers: ["dba"] },
    ]);
    then(when(policy, { statements: [select("orders")] }), { effect: "allow" });
    then(when(policy, { statements: [select("public.orders")] }), { effect: "allow" });
    then(when(policy, { statements: [select("orders_archive")] }), { effect: "deny", rule: undefined });
    then(when(policy, { statements: [select("audit.x")] }), { effect: "deny", rule: "audit" });
    then(when(policy, { statements: [select("audit")] }), { effect: "deny", rule: undefined });
    then(when(policy, { statements: [select("public.stg_orders")] }), { effect: "require_approval", rule: "staging" });
  });

  it("allows by relation only when every relation the statement touches is covered", () => {
    const policy = given([
      { name: "orders-only", match: { relations: ["orders", "public.customers"] }, effect: "allow" },
    ]);
    then(when(policy, { statements: [select("orders", "public.customers")] }), { effect: "allow" });
    then(when(policy, { statements: [select("orders", "secrets")] }), {
      effect: "deny",
      reason: "no rule allows read on app",
    });
    then(when(policy, { statements: [insert("secrets", "orders")] }), { effect: "deny" });
  });

  it("fires a restrictive relation rule on any relation the statement reads or writes", () => {
    const policy = given([
      { name: "all", effect: "allow" },
      {
        name: "no-pii",
        match: { relations: ["pii.*"], classes: ["read"] },
        effect: "deny",
        reason: "PII is off limits",
      },
    ]);
    then(when(policy, { statements: [select("orders", "pii.people")] }), {
      effect: "deny",
      reason: "PII is off limits",
    });
    then(when(policy, { statements: [insert("orders", "pii.people")] }), { effect: "deny", rule: "no-pii" });
  });

  it("takes the worst decision over several statements", () => {
    const policy = given([
      readOnlyForAnalysts,
      {
        name: "approve-orders",
        match: { relations: ["orders"], classes: ["write"] },
        effect: "require_approval",
        approvers: ["dba"],
      },
    ]);
    then(when(policy, { statements: [select("orders"), select("customers")] }), { effect: "allow" });
    then(when(policy, { statements: [select("orders"), insert("orders")] }), {
      effect: "require_approval",
      rule: "approve-orders",
    });
    then(
      when(policy, { statements: [insert("orders"), select("x"), { class: "ddl", classes: ["ddl"], writes: ["t"] }] }),
      {
        effect: "deny",
        reason: "no rule allows ddl on app",
      },
    );
  });

  it("does not let a read-only rule allow a SELECT with a data-modifying CTE (read and write)", () => {
    const policy = given([readOnlyForAnalysts]);
    const cte: StatementFacts = { class: "write", classes: ["read", "write"], reads: ["orders"], writes: ["orders"] };
    then(when(policy, { statements: [cte] }), { effect: "deny", reason: "no rule allows write on app" });
    // The class field alone counts too, should an older analysis leave classes empty.
    then(when(policy, { statements: [{ class: "write", reads: ["orders"] }] }), { effect: "deny" });
  });

  it("treats a statement that changes a protected setting as privilege", () => {
    const policy = given([{ name: "sessions", match: { classes: ["session", "read"] }, effect: "allow" }]);
    then(when(policy, { statements: [{ class: "session", classes: ["session"] }] }), { effect: "allow" });
    then(when(policy, { statements: [{ class: "session", classes: ["session"], protectedSetting: "role" }] }), {
      effect: "deny",
      reason: "no rule allows privilege on app",
    });
  });

  it("fails closed on an empty request and on an unclassified statement", () => {
    const policy = given([{ name: "anything", effect: "allow" }]);
    then(when(policy, { statements: [] }), { effect: "deny", reason: "there is no statement to decide" });
    then(when(policy, { statements: [{ reads: ["t"] }] }), {
      effect: "deny",
      reason: "the statement could not be classified",
    });
  });

  it("asks for approval that satisfies every rule requiring it, or denies when no group can", () => {
    const policy = given([
      { name: "all", effect: "allow" },
      {
        name: "orders",
        match: { relations: ["orders"], classes: ["write"] },
        effect: "require_approval",
        approvers: ["dba", "leads"],
      },
      {
        name: "billing",
        match: { relations: ["invoices"], classes: ["write"] },
        effect: "require_approval",
        approvers: ["leads", "finance"],
        approvals: 3,
      },
      {
        name: "security",
        match: { relations: ["grants"], classes: ["write"] },
        effect: "require_approval",
        approvers: ["security"],
      },
    ]);
    then(when(policy, { statements: [insert("orders"), insert("invoices")] }), {
      effect: "require_approval",
      rule: "orders",
      approverGroups: ["leads"],
      approvalsRequired: 3,
    });
    then(when(policy, { statements: [insert("orders"), insert("grants")] }), {
      effect: "deny",
      rule: "orders",
      reason: 'rules "orders", "security" require approval from different groups; send these statements separately',
    });
  });
});

describe("grants", () => {
  const policy = () =>
    given([
      readOnlyForAnalysts,
      { name: "no-secrets", match: { classes: ["write"], relations: ["secrets"] }, effect: "deny" },
      {
        name: "orders-need-approval",
        match: { classes: ["write"], relations: ["orders"] },
        effect: "require_approval",
        approvers: ["dba"],
      },
    ]);
  const grant = { id: "g1", subject: "agent-7", issuer: "https://idp", target: "app", classes: ["write"] };
  const me = { ...analyst, issuer: "https://idp" };

  it("allow what no rule allows, for the grantee on the target and classes granted", () => {
    then(when(policy(), { principal: me, statements: [insert("t")] }), { effect: "deny" });
    then(when(policy(), { principal: me, statements: [insert("t")], grants: [grant] }), {
      effect: "allow",
      rule: "grant g1",
    });
    for (const other of [
      { principal: { ...me, issuer: "https://elsewhere" } },
      { principal: { ...me, subject: "agent-8" } },
      { target: "other" },
    ]) {
      then(when(policy(), { principal: me, statements: [insert("t")], grants: [grant], ...other }), { effect: "deny" });
    }
    then(when(policy(), { principal: me, statements: [{ class: "ddl", classes: ["ddl"] }], grants: [grant] }), {
      effect: "deny",
    });
  });

  it("never lift an explicit deny or an approval rule", () => {
    then(when(policy(), { principal: me, statements: [insert("secrets")], grants: [grant] }), {
      effect: "deny",
      rule: "no-secrets",
    });
    then(when(policy(), { principal: me, statements: [insert("orders")], grants: [grant] }), {
      effect: "require_approval",
      rule: "orders-need-approval",
    });
  });
});

describe("readOnly", () => {
  const policy = given([
    readOnlyForAnalysts,
    { name: "analysts-export", match: { groups: ["analysts"], classes: ["copy-out"] }, effect: "allow" },
    { name: "dba-all", match: { groups: ["dba"] }, effect: "allow" },
    {
      name: "loader",
      match: { subjects: ["etl"], targets: ["warehouse"], classes: ["copy-in"] },
      effect: "require_approval",
      approvers: ["dba"],
    },
    { name: "no-ddl", match: { classes: ["ddl"] }, effect: "deny" },
  ]);

  it("is true when every rule that can apply allows only reads, exports, session and transaction control", () => {
    assert.equal(readOnly(policy, analyst, "app"), true);
    assert.equal(readOnly(policy, { subject: "etl", groups: [] }, "app"), true);
    assert.equal(readOnly(policy, stranger, "app"), true);
  });

  it("is false when some rule that can apply allows or asks approval for more", () => {
    assert.equal(readOnly(policy, dba, "app"), false);
    assert.equal(readOnly(policy, { subject: "etl", groups: [] }, "warehouse"), false);
    assert.equal(readOnly(given([{ name: "all", effect: "allow" }]), stranger, "app"), false);
  });
});
