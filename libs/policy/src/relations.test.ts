import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { compileRelationPattern } from "./relations.ts";

describe("relation patterns", () => {
  const cases: [pattern: string, relation: string, matches: boolean][] = [
    ["orders", "orders", true],
    ["orders", "public.orders", true],
    ["orders", "orders_2024", false],
    ["orders*", "public.orders_2024", true],
    ["public.orders", "public.orders", true],
    ["public.orders", "orders", false],
    ["public.orders", "sales.orders", false],
    ["audit.*", "audit.x", true],
    ["audit.*", "mydb.audit.x", true],
    ["audit.*", "audit", false],
    ["audit.*", "auditx.y", false],
    ["*", "anything.at.all", true],
    ["*.*", "orders", false],
    ["a+b", "a+b", true],
    ["a+b", "aab", false],
    ["Orders", "orders", false],
  ];
  for (const [pattern, relation, matches] of cases) {
    it(`${pattern} ${matches ? "matches" : "does not match"} ${relation}`, () => {
      assert.equal(compileRelationPattern(pattern)(relation), matches);
    });
  }
});
