import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { MaskingError } from "./errors.ts";
import {
  initLineage,
  type Lineage,
  type LineageOptions,
  type OutputLineage,
  outputLineage,
  type Source,
  statementLineages,
} from "./lineage.ts";

before(() => initLineage());

/** A catalog of a few tables, as the proxy's would answer columnsOf. */
const CATALOG: Record<string, readonly string[]> = {
  customers: ["id", "name", "email", "ssn"],
  "public.customers": ["id", "name", "email", "ssn"],
  orders: ["id", "customer_id", "amount", "card"],
  a: ["id", "x"],
  b: ["id", "y"],
};
const withCatalog: LineageOptions = { columnsOf: (relation) => CATALOG[relation] };

/** One line per output column: `name <- t.c, u.*`, `*t` (a relation's columns), `... <- sources` (unknown width). */
function render(lineage: OutputLineage): string[] | "opaque" {
  if (lineage === "opaque") return "opaque";
  return lineage.map((entry: Lineage) => {
    if (entry.kind === "star") return `*${entry.relation}${entry.except ? ` except ${entry.except.join(",")}` : ""}`;
    // A column can derive from a source both as it is and computed (a recursive CTE): shown once.
    const sources = [...new Set(entry.sources.map(show))].join(", ");
    return `${entry.kind === "column" ? entry.name : "..."} <- ${sources}`;
  });
}

function show(source: Source): string {
  return "wholeRow" in source ? `${source.relation}.*` : `${source.relation}.${source.column}`;
}

function lineage(sql: string, options?: LineageOptions) {
  return render(outputLineage(sql, options));
}

describe("lineage: columns and expressions", () => {
  it("given plain column references through aliases, then each names its relation's column", () => {
    assert.deepEqual(lineage("SELECT c.email AS contact, c.name FROM customers c"), [
      "contact <- customers.email",
      "name <- customers.name",
    ]);
    assert.deepEqual(lineage("SELECT public.customers.email FROM public.customers"), [
      "email <- public.customers.email",
    ]);
  });

  it("given functions, casts, operators, CASE and COALESCE, then every column they read is a source", () => {
    assert.deepEqual(
      lineage(
        "SELECT lower(email) || '@' || name, coalesce(ssn, email)::varchar(10), " +
          "CASE WHEN id > 10 THEN email ELSE 'n/a' END, -id, email IS NULL, 1::int, 'x'::text FROM customers",
      ),
      [
        "?column? <- customers.email, customers.name",
        "coalesce <- customers.email, customers.ssn",
        "case <- customers.email, customers.id",
        "?column? <- customers.id",
        "?column? <- customers.email",
        "int4 <- ",
        "text <- ",
      ],
    );
  });

  it("given aggregates, then values flow from their arguments; count() carries none", () => {
    assert.deepEqual(
      lineage(
        "SELECT count(*), count(ssn), max(amount), string_agg(name, ',' ORDER BY ssn), " +
          "percentile_disc(0.5) WITHIN GROUP (ORDER BY amount), sum(amount) FILTER (WHERE ssn IS NULL) FROM t",
      ),
      [
        "count <- ",
        "count <- ",
        "max <- t.amount",
        "string_agg <- t.name",
        "percentile_disc <- t.amount",
        "sum <- t.amount",
      ],
    );
  });

  it("given window functions, then values flow from their arguments, not from PARTITION BY or ORDER BY", () => {
    assert.deepEqual(
      lineage("SELECT lag(salary) OVER (PARTITION BY dept ORDER BY hired), rank() OVER (ORDER BY salary) FROM emp"),
      ["lag <- emp.salary", "rank <- "],
    );
  });

  it("given constants, parameters and session functions, then no sources", () => {
    assert.deepEqual(lineage("SELECT 1, $1, now(), current_user, GROUPING(a) FROM t GROUP BY a"), [
      "?column? <- ",
      "?column? <- ",
      "now <- ",
      "current_user <- ",
      "grouping <- ",
    ]);
  });

  it("given filters, joins and ordering on sensitive columns, then they are no sources of the output", () => {
    assert.deepEqual(
      lineage("SELECT c.name FROM customers c JOIN orders o ON o.card = c.ssn WHERE c.ssn LIKE '9%' ORDER BY c.email"),
      ["name <- customers.name"],
    );
  });

  it("given scalar, ARRAY, EXISTS and IN subqueries, then their output columns are sources", () => {
    assert.deepEqual(
      lineage(
        "SELECT (SELECT max(o.card) FROM orders o WHERE o.customer_id = c.id), ARRAY(SELECT email FROM customers), " +
          "EXISTS (SELECT 1 FROM orders), c.id IN (SELECT customer_id FROM orders) FROM customers c",
        withCatalog,
      ),
      ["max <- orders.card", "array <- customers.email", "exists <- ", "?column? <- customers.id, orders.customer_id"],
    );
  });

  it("given a correlated subquery with unqualified names, then the catalog decides which level has them", () => {
    const sql = "SELECT (SELECT ssn FROM orders WHERE customer_id = id LIMIT 1) FROM customers";
    assert.deepEqual(lineage(sql, withCatalog), ["ssn <- customers.ssn"]);
    // Without the catalog, orders may have an ssn column too: both are kept.
    assert.deepEqual(lineage(sql), ["ssn <- customers.ssn, orders.ssn"]);
  });

  it("given an unqualified name over two relations, then without the catalog both are candidates", () => {
    assert.deepEqual(lineage("SELECT email FROM customers, orders"), ["email <- customers.email, orders.email"]);
    assert.deepEqual(lineage("SELECT email FROM customers, orders", withCatalog), ["email <- customers.email"]);
  });

  it("given a composite field ((t.c).f, (c).*), then the composite column is the source", () => {
    assert.deepEqual(lineage("SELECT (p.address).city, (address).zip FROM people p"), [
      "city <- people.address",
      "zip <- people.address",
    ]);
    assert.deepEqual(lineage("SELECT (p.address).* FROM people p"), ["... <- people.address"]);
  });
});

describe("lineage: whole rows and stars", () => {
  it("given whole-row references, then the relation's whole row is the source", () => {
    assert.deepEqual(
      lineage("SELECT c, row_to_json(c), to_jsonb(c.*), row(c.*) IS NULL FROM customers c", withCatalog),
      ["c <- customers.*", "row_to_json <- customers.*", "to_jsonb <- customers.*", "?column? <- customers.*"],
    );
  });

  it("given * without the catalog, then a star per relation, for the proxy to expand", () => {
    assert.deepEqual(lineage("SELECT * FROM customers"), ["*customers"]);
    assert.deepEqual(lineage("SELECT o.*, c.email FROM orders o JOIN customers c ON c.id = o.customer_id"), [
      "*orders",
      "email <- customers.email",
    ]);
    assert.deepEqual(lineage("TABLE public.customers"), ["*public.customers"]);
  });

  it("given * with the catalog, then every column", () => {
    assert.deepEqual(lineage("SELECT * FROM customers c", withCatalog), [
      "id <- customers.id",
      "name <- customers.name",
      "email <- customers.email",
      "ssn <- customers.ssn",
    ]);
  });

  it("given JOIN ... USING, then the merged column first, from both sides, then the rest", () => {
    assert.deepEqual(lineage("SELECT * FROM a JOIN b USING (id)"), [
      "id <- a.id, b.id",
      "*a except id",
      "*b except id",
    ]);
    assert.deepEqual(lineage("SELECT * FROM a FULL JOIN b USING (id)", withCatalog), [
      "id <- a.id, b.id",
      "x <- a.x",
      "y <- b.y",
    ]);
    assert.deepEqual(lineage("SELECT j.id FROM a JOIN b USING (id) AS j"), ["id <- a.id, b.id"]);
  });

  it("given NATURAL JOIN, then the catalog finds the shared columns; without it, a run over both", () => {
    assert.deepEqual(lineage("SELECT * FROM a NATURAL JOIN b", withCatalog), [
      "id <- a.id, b.id",
      "x <- a.x",
      "y <- b.y",
    ]);
    assert.deepEqual(lineage("SELECT * FROM a NATURAL JOIN b"), ["... <- a.*, b.*"]);
  });

  it("given an aliased join, then its alias names the join's columns", () => {
    assert.deepEqual(lineage("SELECT j.* FROM (a JOIN b ON true) AS j"), ["*a", "*b"]);
  });

  it("given column aliases on a table, then renamed columns resolve by position with the catalog", () => {
    assert.deepEqual(lineage("SELECT k, mail FROM customers AS c(k, n, mail)", withCatalog), [
      "k <- customers.id",
      "mail <- customers.email",
    ]);
    // Without the catalog the position is unknown: any column of the table.
    assert.deepEqual(lineage("SELECT mail, ssn FROM customers AS c(k, n, mail)"), [
      "mail <- customers.*",
      "ssn <- customers.ssn",
    ]);
  });
});

describe("lineage: subqueries, CTEs, set operations, VALUES", () => {
  it("given a subquery in FROM, then its columns lead back to their sources", () => {
    assert.deepEqual(lineage("SELECT x, s.y FROM (SELECT email AS x, upper(name) AS y FROM customers) s"), [
      "x <- customers.email",
      "y <- customers.name",
    ]);
    assert.deepEqual(lineage("SELECT * FROM (SELECT email, 1 AS one FROM customers) AS s(mail)"), [
      "mail <- customers.email",
      "one <- ",
    ]);
  });

  it("given CTEs, then through each one, with their column lists", () => {
    assert.deepEqual(
      lineage("WITH a AS (SELECT ssn, name FROM people), b(s) AS (SELECT ssn FROM a) SELECT b.s, a.name FROM b, a"),
      ["s <- people.ssn", "name <- people.name"],
    );
  });

  it("given a CTE named like a table, then the CTE; schema-qualified, the table", () => {
    assert.deepEqual(lineage("WITH customers AS (SELECT 1 AS email) SELECT email FROM customers"), ["email <- "]);
    assert.deepEqual(lineage("WITH customers AS (SELECT 1 AS email) SELECT email FROM public.customers"), [
      "email <- public.customers.email",
    ]);
  });

  it("given a recursive CTE, then the sources of both its terms", () => {
    assert.deepEqual(
      lineage(
        "WITH RECURSIVE r(id, path) AS (SELECT id, name FROM tree WHERE parent IS NULL " +
          "UNION ALL SELECT t.id, r.path || '/' || t.name FROM tree t JOIN r ON t.parent = r.id) SELECT path FROM r",
      ),
      ["path <- tree.name"],
    );
  });

  it("given UNION, INTERSECT and EXCEPT, then each position takes both sides", () => {
    assert.deepEqual(
      lineage("SELECT email, id FROM customers UNION SELECT card, 1 FROM orders EXCEPT SELECT x, y FROM z"),
      ["email <- customers.email, orders.card, z.x", "id <- customers.id, z.y"],
    );
  });

  it("given a set operation with a * side, then positions follow the known side", () => {
    assert.deepEqual(lineage("SELECT email, name FROM customers UNION ALL SELECT * FROM archive"), [
      "email <- customers.email, archive.*",
      "name <- customers.name, archive.*",
    ]);
    assert.deepEqual(lineage("SELECT * FROM a UNION SELECT * FROM b"), ["... <- a.*, b.*"]);
  });

  it("given VALUES, then column1.. from each row", () => {
    assert.deepEqual(lineage("VALUES (1, (SELECT ssn FROM people LIMIT 1)), (2, 'x')"), [
      "column1 <- ",
      "column2 <- people.ssn",
    ]);
    assert.deepEqual(lineage("SELECT b FROM (VALUES (1, 'x')) AS v(a, b)"), ["b <- "]);
  });

  it("given LATERAL subqueries and functions, then they see the earlier FROM items", () => {
    assert.deepEqual(
      lineage(
        "SELECT x.total, e.value FROM customers c, LATERAL (SELECT sum(o.amount) AS total FROM orders o " +
          "WHERE o.customer_id = c.id) x, jsonb_each(c.profile) e",
      ),
      ["total <- orders.amount", "value <- customers.profile"],
    );
  });
});

describe("lineage: functions in FROM", () => {
  it("given set-returning built-ins of known shape, then their columns by name", () => {
    assert.deepEqual(
      lineage("SELECT g.g, u.u, u.ordinality FROM t, generate_series(1, 3) g, unnest(t.tags) WITH ORDINALITY u"),
      ["g <- ", "u <- t.tags", "ordinality <- "],
    );
    assert.deepEqual(lineage("SELECT * FROM t, jsonb_each(t.doc)"), ["*t", "key <- t.doc", "value <- t.doc"]);
  });

  it("given a column definition list, then those columns, each from the function's arguments", () => {
    assert.deepEqual(lineage("SELECT r.a FROM t, jsonb_to_record(t.doc) AS r(a int, b text)"), ["a <- t.doc"]);
  });

  it("given a built-in of unknown shape, then a run of columns and any name derived from its arguments", () => {
    assert.deepEqual(lineage("SELECT * FROM t, pg_options_to_table(t.opts) f"), ["*t", "... <- t.opts"]);
    assert.deepEqual(lineage("SELECT f.whatever FROM t, json_populate_record(null::t, t.doc) f"), [
      "whatever <- t.doc",
    ]);
    assert.deepEqual(lineage("SELECT * FROM json_populate_record(null::t, '{}') f"), ["... <- "]);
  });

  it("given XMLTABLE and JSON_TABLE, then their columns from the document", () => {
    assert.deepEqual(
      lineage(
        "SELECT x.name FROM docs d, XMLTABLE('/r' PASSING d.body COLUMNS name text PATH 'n', n FOR ORDINALITY) x",
      ),
      ["name <- docs.body"],
    );
    assert.deepEqual(
      lineage(
        "SELECT j.* FROM docs d, JSON_TABLE(d.doc, '$[*]' COLUMNS (a int PATH '$.a', NESTED PATH '$.n[*]' COLUMNS (b text PATH '$'))) j",
      ),
      ["a <- docs.doc", "b <- docs.doc"],
    );
  });
});

describe("lineage: opaque functions", () => {
  it("given a user-defined function whose result is returned, then opaque", () => {
    assert.equal(lineage("SELECT app.decrypt(ssn) FROM people"), "opaque");
    assert.equal(lineage("SELECT * FROM my_report()"), "opaque");
    assert.equal(lineage("SELECT x FROM (SELECT f() AS x) s"), "opaque");
  });

  it("given a user-defined function only in WHERE, then its result is no output and the lineage stands", () => {
    assert.deepEqual(lineage("SELECT name FROM people WHERE app.visible(id)"), ["name <- people.name"]);
  });

  it("given a user-defined set-returning function, then opaque when its columns are returned, not when only counted", () => {
    assert.equal(lineage("SELECT x FROM app.rows() AS f(x int)"), "opaque");
    assert.deepEqual(lineage("SELECT count(*) FROM app.rows()"), ["count <- "]);
  });

  it("given built-ins that read outside the parse tree (large objects, cursors), then opaque", () => {
    assert.equal(lineage("SELECT lo_get(42)"), "opaque");
    assert.equal(lineage("SELECT cursor_to_xml('c', 10, false, false, '')"), "opaque");
    assert.equal(lineage("SELECT query_to_xml('select * from people', false, false, '')"), "opaque");
  });

  it("given read-only built-ins, qualified with pg_catalog or not, then they are seen through", () => {
    assert.deepEqual(lineage("SELECT pg_catalog.upper(email), md5(ssn) FROM customers"), [
      "upper <- customers.email",
      "md5 <- customers.ssn",
    ]);
    // The same name in another schema is another function.
    assert.equal(lineage("SELECT app.upper(email) FROM customers"), "opaque");
  });

  it("given an isOpaqueFunction that knows a function is safe, then it is seen through", () => {
    const options: LineageOptions = { isOpaqueFunction: (name) => name !== "app.mask_email" };
    assert.deepEqual(lineage("SELECT app.mask_email(email) FROM customers", options), [
      "mask_email <- customers.email",
    ]);
  });

  it("given a procedure CALL, then opaque (its OUT parameters come from inside it)", () => {
    assert.equal(lineage("CALL app.report(1)"), "opaque");
  });
});

describe("lineage: statements", () => {
  it("given COPY ... TO, then the rows copied; COPY FROM returns none", () => {
    assert.deepEqual(lineage("COPY customers TO STDOUT"), ["*customers"]);
    assert.deepEqual(lineage("COPY customers (email, name) TO STDOUT WITH (FORMAT csv)"), [
      "email <- customers.email",
      "name <- customers.name",
    ]);
    assert.deepEqual(lineage("COPY (SELECT upper(ssn) FROM people) TO STDOUT"), ["upper <- people.ssn"]);
    assert.deepEqual(lineage("COPY customers FROM STDIN"), []);
  });

  it("given DECLARE CURSOR, then the rows FETCH will return; FETCH follows the cursors given", () => {
    const declared = outputLineage("DECLARE c CURSOR FOR SELECT ssn FROM people");
    assert.deepEqual(render(declared), ["ssn <- people.ssn"]);
    const cursors = new Map([["c", declared]]);
    assert.deepEqual(lineage("FETCH 10 FROM c", { cursors }), ["ssn <- people.ssn"]);
    assert.equal(lineage("FETCH 10 FROM unknown_cursor", { cursors }), "opaque");
    assert.deepEqual(lineage("MOVE 10 IN unknown_cursor"), []);
  });

  it("given PREPARE, then its body; EXECUTE follows the prepared statements given", () => {
    assert.deepEqual(lineage("PREPARE q AS SELECT email FROM customers WHERE id = $1"), ["email <- customers.email"]);
    const prepared = new Map([
      ["q", "PREPARE q AS SELECT email FROM customers WHERE id = $1"],
      ["r", "SELECT ssn FROM people"],
      ["loop", "EXECUTE loop"],
    ]);
    assert.deepEqual(lineage("EXECUTE q(1)", { prepared }), ["email <- customers.email"]);
    assert.deepEqual(lineage("EXECUTE r", { prepared }), ["ssn <- people.ssn"]);
    assert.equal(lineage("EXECUTE loop", { prepared }), "opaque");
    assert.equal(lineage("EXECUTE unknown"), "opaque");
  });

  it("given INSERT, UPDATE, DELETE and MERGE with RETURNING, then the target's (and FROM's) columns", () => {
    assert.deepEqual(lineage("INSERT INTO customers (name) VALUES ('x') RETURNING id, email"), [
      "id <- customers.id",
      "email <- customers.email",
    ]);
    assert.deepEqual(
      lineage("UPDATE customers c SET name = o.card FROM orders o WHERE o.id = c.id RETURNING c.ssn, o.amount"),
      ["ssn <- customers.ssn", "amount <- orders.amount"],
    );
    assert.deepEqual(lineage("DELETE FROM customers RETURNING *"), ["*customers"]);
    assert.deepEqual(lineage("DELETE FROM customers RETURNING WITH (OLD AS before) before.ssn, new.email"), [
      "ssn <- customers.ssn",
      "email <- customers.email",
    ]);
    assert.deepEqual(
      lineage(
        "MERGE INTO customers c USING staging s ON s.id = c.id WHEN MATCHED THEN DO NOTHING RETURNING s.ssn, c.email",
      ),
      ["ssn <- staging.ssn", "email <- customers.email"],
    );
    assert.deepEqual(lineage("UPDATE customers SET name = 'x'"), []);
  });

  it("given a data-modifying CTE, then its RETURNING is followed into the query", () => {
    assert.deepEqual(lineage("WITH gone AS (DELETE FROM people RETURNING ssn) SELECT upper(ssn) FROM gone"), [
      "upper <- people.ssn",
    ]);
  });

  it("given a view's definition as pg_get_viewdef prints it, then the lineage of the view's columns", () => {
    assert.deepEqual(lineage(" SELECT c.email AS contact,\n    lower(c.name) AS n\n   FROM customers c;"), [
      "contact <- customers.email",
      "n <- customers.name",
    ]);
  });

  it("given statements that return no table data, then no lineage", () => {
    for (const sql of [
      "SET search_path = app",
      "SHOW search_path",
      "EXPLAIN ANALYZE SELECT ssn FROM people",
      "CREATE TABLE copy AS SELECT ssn FROM people",
      "SELECT ssn INTO copy FROM people",
      "BEGIN",
    ]) {
      assert.deepEqual(lineage(sql), [], sql);
    }
  });

  it("given several statements, then one lineage each; outputLineage wants one", () => {
    const all = statementLineages("SELECT email FROM customers; SELECT f(); SET x = 1").map(render);
    assert.deepEqual(all, [["email <- customers.email"], "opaque", []]);
    assert.throws(
      () => outputLineage("SELECT 1; SELECT 2"),
      (error: unknown) => error instanceof MaskingError && error.code === "not_one_statement",
    );
    assert.deepEqual(outputLineage(""), []);
  });

  it("given SQL the parser rejects, then unparsable_sql", () => {
    assert.throws(
      () => outputLineage("SELEC email FROM customers"),
      (error: unknown) => error instanceof MaskingError && error.code === "unparsable_sql",
    );
  });

  it("given a deeply nested expression, then a lineage or opaque, never a crash", () => {
    const deep = `SELECT ${"lower(".repeat(900)}email${")".repeat(900)} FROM customers`;
    const result = lineage(deep);
    assert.ok(result === "opaque" || (Array.isArray(result) && result[0] === "lower <- customers.email"));
  });
});
