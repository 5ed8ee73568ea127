import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { MaskingError } from "./errors.ts";
import { initLineage } from "./lineage.ts";
import { statementShapes } from "./statements.ts";

before(() => initLineage());

const columnsOf = (relation: string) =>
  relation === "customers" || relation === "public.customers" ? ["id", "name", "ssn"] : undefined;

describe("statement shapes", () => {
  it("one shape per statement, with the lineage of what it returns", () => {
    const shapes = statementShapes("SELECT 1; SELECT ssn AS x FROM customers", { columnsOf });
    assert.equal(shapes.length, 2);
    assert.deepEqual(shapes[1]!.lineage, [
      { kind: "column", name: "x", sources: [{ relation: "customers", column: "ssn" }] },
    ]);
    assert.deepEqual(shapes[1]!.relations, ["customers"]);
  });

  it("PREPARE keeps its own text out of a multi-statement string (bytes, not characters), DECLARE its cursor", () => {
    const sql = "SELECT 'é'; PREPARE p AS SELECT ssn FROM customers; DECLARE c CURSOR FOR SELECT name FROM customers";
    const [, prepare, declare] = statementShapes(sql, { columnsOf });
    assert.deepEqual(prepare!.prepare, { name: "p", text: "PREPARE p AS SELECT ssn FROM customers" });
    assert.equal(declare!.declare, "c");
    assert.deepEqual(
      statementShapes("DEALLOCATE ALL; CLOSE ALL; DEALLOCATE p; CLOSE c").map((s) => s.deallocate ?? s.close),
      ["", "", "p", "c"],
    );
  });

  it("reads how COPY ... TO writes its rows", () => {
    const format = (sql: string) => statementShapes(sql)[0]!.copyTo;
    assert.deepEqual(format("COPY t TO STDOUT"), { format: "text", header: false });
    assert.deepEqual(format("COPY t TO STDOUT WITH CSV HEADER"), { format: "csv", header: true });
    assert.deepEqual(
      format("COPY t TO STDOUT (FORMAT csv, DELIMITER ';', NULL 'n', QUOTE '''', ESCAPE '\\', HEADER false)"),
      {
        format: "csv",
        delimiter: ";",
        null: "n",
        quote: "'",
        escape: "\\",
        header: false,
      },
    );
    assert.deepEqual(format("COPY t TO STDOUT (FORMAT binary)"), { format: "binary", header: false });
    assert.equal(format("COPY t FROM STDIN"), undefined);
  });

  it("names the columns used to filter, join, group or order, not those returned", () => {
    const used = (sql: string) => statementShapes(sql)[0]!.predicateColumns.sort();
    assert.deepEqual(used("SELECT ssn FROM customers"), []);
    assert.deepEqual(used("SELECT id FROM customers WHERE ssn LIKE '1%' ORDER BY name"), ["name", "ssn"]);
    assert.deepEqual(used("SELECT count(*) FROM a JOIN b ON a.card = b.card GROUP BY a.email HAVING max(b.x) > 1"), [
      "card",
      "email",
      "x",
    ]);
    assert.deepEqual(used("SELECT 1 FROM a JOIN b USING (ssn)"), ["ssn"]);
    assert.deepEqual(used("SELECT DISTINCT ON (email) id FROM a"), ["email"]);
    assert.deepEqual(used("SELECT rank() OVER (PARTITION BY ssn ORDER BY id) FROM a"), ["id", "ssn"]);
  });

  it("finds values a statement stores: CREATE TABLE AS, SELECT INTO, INSERT ... SELECT (also in WITH), UPDATE SET", () => {
    const stored = (sql: string) => {
      const shape = statementShapes(sql, { columnsOf })[0]!;
      return { lineages: shape.storedLineages.length, columns: shape.storedColumns.sort() };
    };
    assert.deepEqual(stored("CREATE TABLE x AS SELECT ssn FROM customers"), { lineages: 1, columns: [] });
    assert.deepEqual(stored("SELECT ssn INTO x FROM customers"), { lineages: 1, columns: [] });
    assert.deepEqual(stored("INSERT INTO x SELECT ssn FROM customers"), { lineages: 1, columns: [] });
    assert.deepEqual(stored("INSERT INTO x VALUES (1)"), { lineages: 1, columns: [] });
    assert.deepEqual(stored("WITH w AS (INSERT INTO x SELECT 1 RETURNING 1) SELECT * FROM w"), {
      lineages: 1,
      columns: [],
    });
    assert.deepEqual(stored("UPDATE customers SET name = ssn || c.x FROM c WHERE id = 1"), {
      lineages: 0,
      columns: ["ssn", "x"],
    });
    assert.deepEqual(stored("SELECT ssn FROM customers"), { lineages: 0, columns: [] });
    const lineage = statementShapes("CREATE TABLE x AS SELECT upper(ssn) FROM customers", { columnsOf })[0]!
      .storedLineages[0];
    assert.deepEqual(lineage, [
      { kind: "column", name: "upper", sources: [{ relation: "customers", column: "ssn", derived: true }] },
    ]);
  });

  it("refuses SQL the parser rejects, with a MaskingError", () => {
    assert.throws(
      () => statementShapes("SELEC 1"),
      (e: unknown) => e instanceof MaskingError && e.code === "unparsable_sql",
    );
    assert.deepEqual(statementShapes(""), []);
  });
});
