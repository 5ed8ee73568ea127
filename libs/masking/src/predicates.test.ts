import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { initLineage, type Source } from "./lineage.ts";
import { refusalMessage, refusedUse } from "./predicates.ts";
import { derivedMask, type Mask, type MaskedPredicates, type MaskRule, masksFor, strictest } from "./rules.ts";
import { statementShapes } from "./statements.ts";

before(() => initLineage());

const CATALOG: Record<string, readonly string[]> = {
  customers: ["id", "name", "ssn", "email", "card"],
  orders: ["id", "customer_id", "card", "note"],
};

const RULES: MaskRule[] = [
  { column: "public.customers.ssn", strategy: "redact" },
  { column: "public.customers.email", strategy: "partial", keep: 4 },
  { column: "public.*.card", strategy: "hash" },
];

/** The proxy's view of a source, without a catalog connection: every relation is in `public`. */
function maskOf(source: Source): Mask | undefined {
  const matcher = masksFor(RULES, []);
  const columns = "wholeRow" in source ? (CATALOG[source.relation] ?? []) : [source.column];
  let mask: Mask | undefined;
  for (const column of columns) mask = strictest(mask, matcher.strategyFor("public", source.relation, column));
  return "wholeRow" in source || source.derived === true ? derivedMask(mask) : mask;
}

/** "allowed", or `column @ clause (detail)` of the first refused use. */
function judge(sql: string, mode: MaskedPredicates = "whole-value"): string {
  const shapes = statementShapes(sql, { columnsOf: (relation) => CATALOG[relation] });
  for (const shape of shapes) {
    assert.notEqual(shape.uses, "incomplete", sql);
    if (shape.uses === "incomplete") continue;
    const refusal = refusedUse(shape.uses, mode, maskOf);
    if (refusal !== undefined) {
      return `${refusal.column} @ ${refusal.clause}${refusal.detail === undefined ? "" : ` (${refusal.detail})`}`;
    }
  }
  return "allowed";
}

describe("masked predicates: whole-value (the default)", () => {
  it("given whole-value comparisons with constants and parameters, then allowed", () => {
    for (const sql of [
      "SELECT id, ssn FROM customers WHERE ssn = '123-45-6789'",
      "SELECT id FROM customers WHERE ssn = $1",
      "SELECT id FROM customers WHERE $1 = ssn AND name LIKE 'A%'",
      "SELECT id FROM customers WHERE ssn <> $1 OR ssn IS NULL",
      "SELECT id FROM customers WHERE ssn IN ('a', 'b', $1)",
      "SELECT id FROM customers WHERE ssn NOT IN ('a')",
      "SELECT id FROM customers WHERE ssn = ANY($1)",
      "SELECT id FROM customers WHERE ssn IS DISTINCT FROM $1::text",
      "SELECT id FROM customers WHERE NOT (email = $1)",
      "SELECT id FROM (SELECT * FROM customers) s WHERE s.ssn = $1",
      "SELECT id FROM customers WHERE ssn IN (SELECT $1::text)",
      "SELECT id FROM customers WHERE ssn = (SELECT 'x')",
      "SELECT 1 WHERE EXISTS (SELECT 1 FROM customers WHERE ssn = $1)",
      "SELECT count(ssn), count(*) FROM customers",
      "SELECT CASE WHEN ssn = $1 THEN 'yes' END FROM customers",
      "UPDATE customers SET name = 'x' WHERE ssn = $1",
      "DELETE FROM customers WHERE email = $1",
      "CREATE TEMP VIEW v AS SELECT id, name FROM customers",
      "CREATE VIEW v AS SELECT id, ssn FROM customers",
    ]) {
      assert.equal(judge(sql), "allowed", sql);
    }
  });

  it("given values returned, computed by functions that cannot fail, then allowed", () => {
    for (const sql of [
      "SELECT ssn, email, card FROM customers ORDER BY id",
      "SELECT upper(ssn), left(email, 8), substr(email, 1, 4), ssn || '!', ssn::varchar(3) FROM customers",
      "SELECT row_to_json(c), to_jsonb(c) FROM customers c",
      "SELECT string_agg(ssn, ','), max(email), array_agg(card) FROM customers",
      "SELECT first_value(ssn) OVER (ORDER BY id) FROM customers",
      "SELECT format('%s', ssn), coalesce(ssn, 'none') FROM customers",
    ]) {
      assert.equal(judge(sql), "allowed", sql);
    }
  });

  it("given hash columns compared with hash columns, grouped or counted distinct, then allowed", () => {
    for (const sql of [
      "SELECT o.id FROM orders o JOIN customers c ON o.card = c.card",
      "SELECT o.id FROM orders o JOIN customers c USING (card)",
      "SELECT card, count(*) FROM customers GROUP BY card",
      "SELECT DISTINCT card FROM customers",
      "SELECT count(DISTINCT card) FROM customers",
      "SELECT rank() OVER (PARTITION BY card ORDER BY id) FROM customers",
      "SELECT card FROM customers UNION SELECT card FROM orders",
      "SELECT id FROM customers WHERE card IN (SELECT card FROM orders)",
    ]) {
      assert.equal(judge(sql), "allowed", sql);
    }
  });

  it("given ranges, patterns and functions in a condition, then refused, naming the column and the clause", () => {
    const cases: [string, string][] = [
      ["SELECT id FROM customers WHERE ssn LIKE '1%'", "ssn @ WHERE (LIKE)"],
      ["SELECT id FROM customers WHERE ssn < '5'", "ssn @ WHERE (operator <)"],
      ["SELECT id FROM customers WHERE ssn BETWEEN '1' AND '2'", "ssn @ WHERE (BETWEEN)"],
      ["SELECT id FROM customers WHERE ssn ~ '^1'", "ssn @ WHERE (operator ~)"],
      ["SELECT id FROM customers WHERE substr(ssn, 1, 1) = '1'", "ssn @ WHERE"],
      ["SELECT id FROM customers WHERE length(ssn) = 11", "ssn @ WHERE"],
      ["SELECT id FROM customers WHERE ssn::int = 1", "ssn @ WHERE (cast to int4)"],
      ["SELECT id FROM customers WHERE ssn = name", "ssn @ WHERE"],
      ["SELECT id FROM customers c JOIN orders o ON substr(c.ssn, 1, 1) = o.note", "ssn @ JOIN ... ON"],
      ["SELECT c.id FROM customers c JOIN orders o ON c.card = o.note", "card @ JOIN ... ON"],
      ["SELECT id FROM customers GROUP BY id HAVING max(ssn) > '5'", "ssn @ HAVING (operator >)"],
      ["SELECT id FROM customers WHERE starts_with(email, 'a')", "email @ WHERE (function starts_with())"],
      ["SELECT id FROM customers WHERE ssn = ANY(ARRAY[name])", "ssn @ WHERE (= ANY/ALL of an array of values)"],
    ];
    for (const [sql, expected] of cases) assert.equal(judge(sql), expected, sql);
  });

  it("given ordering, grouping, windows and de-duplication by a value that is not hashed, then refused", () => {
    const cases: [string, string][] = [
      ["SELECT id FROM customers ORDER BY ssn", "ssn @ ORDER BY"],
      ["SELECT id, ssn FROM customers ORDER BY 2", "ssn @ ORDER BY"],
      ["SELECT substr(ssn, 1, 1) AS x FROM customers ORDER BY x", "ssn @ ORDER BY"],
      ["SELECT id FROM customers ORDER BY card", "card @ ORDER BY"],
      ["SELECT count(*) FROM customers GROUP BY ssn", "ssn @ GROUP BY"],
      ["SELECT count(*) FROM customers GROUP BY ROLLUP (email)", "email @ GROUP BY"],
      ["SELECT count(*) FROM customers GROUP BY substr(card, 1, 1)", "card @ GROUP BY"],
      ["SELECT DISTINCT ssn FROM customers", "ssn @ DISTINCT"],
      ["SELECT DISTINCT ON (email) id FROM customers", "email @ DISTINCT ON"],
      ["SELECT rank() OVER (PARTITION BY ssn) FROM customers", "ssn @ PARTITION BY"],
      ["SELECT rank() OVER w FROM customers WINDOW w AS (ORDER BY ssn)", "ssn @ a window's ORDER BY"],
      ["SELECT count(DISTINCT ssn) FROM customers", "ssn @ count()"],
      ["SELECT string_agg(name, ',' ORDER BY ssn) FROM customers", "ssn @ an aggregate's ORDER BY"],
      ["SELECT ssn FROM customers INTERSECT SELECT name FROM customers", "ssn @ INTERSECT"],
      ["SELECT * FROM customers a NATURAL JOIN customers b", "ssn @ NATURAL JOIN"],
    ];
    for (const [sql, expected] of cases) assert.equal(judge(sql), expected, sql);
  });

  it("given conditions, counts and row counts computed from a value, then refused", () => {
    const cases: [string, string][] = [
      ["SELECT CASE WHEN substr(ssn, 1, 1) = '1' THEN 1 END FROM customers", "ssn @ CASE WHEN"],
      ["SELECT count(*) FILTER (WHERE ssn > '5') FROM customers", "ssn @ FILTER (operator >)"],
      ["SELECT count(nullif(substr(ssn, 1, 1), '1')) FROM customers", "ssn @ the select list"],
      ["SELECT nullif(substr(ssn, 1, 1), '1') FROM customers", "ssn @ the select list"],
      ["SELECT 1 / (ascii(substr(ssn, 1, 1)) - 49) FROM customers", "ssn @ the select list (function ascii())"],
      ["SELECT substring(ssn from '^1') FROM customers", "ssn @ the select list (function substring())"],
      ["SELECT generate_series(1, length(ssn)) FROM customers", "ssn @ the select list (function generate_series())"],
      [
        "SELECT count(*) FROM customers c, generate_series(1, length(c.ssn))",
        "ssn @ a function in FROM (function generate_series())",
      ],
      ["SELECT id FROM customers LIMIT (SELECT length(ssn) FROM customers LIMIT 1)", "ssn @ LIMIT"],
      ["SELECT 1 FROM customers WHERE id = 1 OFFSET (SELECT length(email) FROM customers LIMIT 1)", "email @ OFFSET"],
      ["SELECT ssn::int FROM customers", "ssn @ the select list (cast to int4)"],
      ["SELECT shout(ssn) FROM customers", "ssn @ the select list (function shout())"],
    ];
    for (const [sql, expected] of cases) assert.equal(judge(sql), expected, sql);
  });

  it("given a filter inside a subquery, CTE, EXISTS, LATERAL, set operation or data-modifying statement, then refused", () => {
    const cases: [string, string][] = [
      ["SELECT name FROM (SELECT * FROM customers WHERE ssn LIKE '1%') s", "ssn @ WHERE (LIKE)"],
      ["WITH s AS (SELECT * FROM customers WHERE ssn LIKE '1%') SELECT name FROM s", "ssn @ WHERE (LIKE)"],
      ["WITH s AS (SELECT * FROM customers WHERE ssn LIKE '1%') SELECT 1", "ssn @ WHERE (LIKE)"],
      ["SELECT 1 WHERE EXISTS (SELECT 1 FROM customers WHERE ssn > '5')", "ssn @ WHERE (operator >)"],
      [
        "SELECT l.x FROM orders o, LATERAL (SELECT 1 AS x FROM customers WHERE ssn > o.note) l",
        "ssn @ WHERE (operator >)",
      ],
      ["SELECT 1 UNION ALL SELECT 1 FROM customers WHERE ssn > '5'", "ssn @ WHERE (operator >)"],
      ["SELECT (SELECT name FROM customers WHERE ssn > '5' LIMIT 1)", "ssn @ WHERE (operator >)"],
      [
        "UPDATE orders SET note = 'x' WHERE EXISTS (SELECT 1 FROM customers WHERE ssn > '5')",
        "ssn @ WHERE (operator >)",
      ],
      ["DELETE FROM customers WHERE ssn LIKE '1%'", "ssn @ WHERE (LIKE)"],
      ["INSERT INTO orders (id) SELECT id FROM customers WHERE ssn LIKE '1%'", "ssn @ WHERE (LIKE)"],
      ["CREATE TABLE t AS SELECT id FROM customers WHERE ssn LIKE '1%'", "ssn @ WHERE (LIKE)"],
      ["CREATE VIEW v AS SELECT id FROM customers WHERE ssn LIKE '1%'", "ssn @ WHERE (LIKE)"],
      ["EXPLAIN ANALYZE SELECT id FROM customers WHERE ssn LIKE '1%'", "ssn @ WHERE (LIKE)"],
      ["SELECT id INTO t FROM customers WHERE ssn LIKE '1%'", "ssn @ WHERE (LIKE)"],
      ["SELECT id FROM customers c WHERE to_jsonb(c)::text LIKE '%1%'", "public.customers.ssn @ WHERE (LIKE)"],
      ["CREATE TEMP VIEW v AS SELECT id, upper(ssn) FROM customers", "ssn @ a temporary view"],
      ["CREATE VIEW pg_temp.v AS SELECT * FROM customers", "card @ a temporary view"],
    ];
    for (const [sql, expected] of cases) assert.equal(judge(sql), expected, sql);
  });
});

describe("masked predicates: refuse and allow", () => {
  it("given refuse, then even whole-value lookups are refused, with the clause named", () => {
    assert.equal(judge("SELECT id FROM customers WHERE ssn = $1", "refuse"), "ssn @ WHERE");
    assert.equal(judge("SELECT o.id FROM orders o JOIN customers c USING (card)", "refuse"), "card @ JOIN ... USING");
    assert.equal(judge("SELECT ssn FROM customers", "refuse"), "allowed");
  });

  it("given allow, then nothing is refused", () => {
    assert.equal(judge("SELECT id FROM customers WHERE substr(ssn, 1, 1) = '1' ORDER BY ssn", "allow"), "allowed");
  });

  it("the refusal names the column and the clause, and no value", () => {
    const { message, hint } = refusalMessage({ column: "ssn", clause: "WHERE", detail: "LIKE", mode: "whole-value" });
    assert.equal(
      message,
      'permission denied: the masked column "ssn" may not be used in WHERE (LIKE): a masked value may only be compared whole with a constant or a parameter',
    );
    assert.match(hint, /col = \$1/);
    assert.match(
      refusalMessage({ column: "ssn", clause: "ORDER BY", mode: "refuse" }).message,
      /may not be used to filter, join, group or order rows \(here: ORDER BY\)/,
    );
  });
});

describe("derived values", () => {
  it("a value computed from a partial or hash column is redacted whole; redact and null stay", () => {
    assert.deepEqual(derivedMask({ strategy: "partial", keep: 4, rule: "r" }), {
      strategy: "redact",
      keep: 0,
      rule: "r",
      derived: true,
    });
    assert.equal(derivedMask({ strategy: "hash", keep: 0, rule: "r" })?.strategy, "redact");
    assert.equal(derivedMask({ strategy: "null", keep: 0, rule: "r" })?.strategy, "null");
    assert.equal(derivedMask(undefined), undefined);
  });

  it("lineage marks computed sources derived, plain references (through subqueries and set operations) not", () => {
    const lineage = statementShapes(
      "SELECT s.email, upper(s.email), x FROM (SELECT email, left(email, 8) AS x FROM customers) s",
      { columnsOf: (relation) => CATALOG[relation] },
    )[0]!.lineage;
    assert.deepEqual(lineage, [
      { kind: "column", name: "email", sources: [{ relation: "customers", column: "email" }] },
      { kind: "column", name: "upper", sources: [{ relation: "customers", column: "email", derived: true }] },
      { kind: "column", name: "x", sources: [{ relation: "customers", column: "email", derived: true }] },
    ]);
  });
});
