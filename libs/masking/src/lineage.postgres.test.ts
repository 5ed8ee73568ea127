// Lineage checked against PostgreSQL's own RowDescription: with the catalog given, a statement has one lineage
// entry per output column, and every column the server labels as a plain reference (table OID + column number) is
// among that entry's sources. The catalog query here is the one the proxy uses.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type FreshDatabase, freshDatabase } from "@agentgate/testkit";
import pg from "pg";
import { initLineage, type LineageOptions, outputLineage } from "./lineage.ts";

/** Every column of the tables, views and materialised views a session can see, by table OID and column number. */
const CATALOG_SQL = `
SELECT c.oid::int AS table_oid, n.nspname AS schema, c.relname AS table, a.attnum AS column_number,
       a.attname AS column, a.atttypid::int AS type_oid, t.typcategory, c.relkind
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
 ORDER BY c.oid, a.attnum`;

interface CatalogRow {
  table_oid: number;
  schema: string;
  table: string;
  column_number: number;
  column: string;
}

const QUERIES = [
  "SELECT * FROM customers",
  "SELECT c.email AS contact, upper(c.name), length(ssn) FROM customers c",
  "SELECT * FROM customers c JOIN orders o ON o.customer_id = c.id",
  "SELECT * FROM customers JOIN orders USING (id)",
  "SELECT * FROM customers NATURAL JOIN orders",
  "SELECT * FROM customers FULL JOIN orders USING (id)",
  "SELECT s.* FROM (SELECT email, id + 1 AS next FROM customers) s",
  "WITH big AS (SELECT customer_id, sum(amount) AS total FROM orders GROUP BY 1) SELECT c.name, big.* FROM big JOIN customers c ON c.id = big.customer_id",
  "SELECT email FROM customers UNION SELECT card FROM orders",
  "SELECT c.name, x.* FROM customers c, LATERAL (SELECT card, amount FROM orders o WHERE o.customer_id = c.id LIMIT 1) x",
  "SELECT * FROM contacts",
  "SELECT contact, name FROM contacts",
  "SELECT c, row_to_json(c) FROM customers c",
  "SELECT * FROM customers AS c(k, n)",
  "SELECT * FROM generate_series(1, 2) g, customers",
  "TABLE orders",
];

describe("lineage agrees with RowDescription", () => {
  let db: FreshDatabase;
  let client: pg.Client;
  let columns: Map<number, CatalogRow[]>;
  let options: LineageOptions;

  before(async () => {
    await initLineage();
    db = await freshDatabase();
    client = new pg.Client({ connectionString: db.url });
    await client.connect();
    await client.query(`
      CREATE TABLE customers (id int PRIMARY KEY, name text, email text, ssn text);
      CREATE TABLE orders (id int, customer_id int, amount numeric, card text);
      ALTER TABLE orders DROP COLUMN amount; ALTER TABLE orders ADD COLUMN amount numeric;
      CREATE VIEW contacts AS SELECT email AS contact, name, lower(email) AS lowered FROM customers;`);
    const { rows } = await client.query<CatalogRow>(CATALOG_SQL);
    columns = new Map();
    for (const row of rows) columns.set(row.table_oid, [...(columns.get(row.table_oid) ?? []), row]);
    const byName = new Map<string, string[]>();
    for (const list of columns.values()) {
      const names = list.map((row) => row.column);
      byName.set(list[0]!.table, names);
      byName.set(`${list[0]!.schema}.${list[0]!.table}`, names);
    }
    options = { columnsOf: (relation) => byName.get(relation) };
  });

  after(async () => {
    await client?.end();
    await db?.drop();
  });

  for (const sql of QUERIES) {
    it(`given ${sql}, then one entry per column and every plain reference among its sources`, async () => {
      const result = await client.query({ text: sql, rowMode: "array" });
      const lineage = outputLineage(sql, options);
      assert.ok(lineage !== "opaque");
      assert.equal(lineage.length, result.fields.length, JSON.stringify(lineage));
      result.fields.forEach((field, i) => {
        const entry = lineage[i]!;
        assert.equal(entry.kind, "column", `column ${i} is resolved`);
        if (entry.kind !== "column") return;
        if (field.tableID !== 0 && field.columnID === 0) {
          // Column number 0 is a whole-row reference (`SELECT c FROM customers c`): every column is in it.
          const table = columns.get(field.tableID)?.[0]?.table;
          assert.ok(entry.sources.some((source) => "wholeRow" in source && source.relation === table));
        } else if (field.tableID !== 0) {
          const origin = columns.get(field.tableID)?.find((row) => row.column_number === field.columnID);
          assert.ok(origin, `catalog has ${field.tableID}.${field.columnID}`);
          assert.ok(
            entry.sources.some(
              (source) =>
                (source.relation === origin.table || source.relation === `${origin.schema}.${origin.table}`) &&
                ("wholeRow" in source || source.column === origin.column),
            ),
            `${field.name}: ${origin.table}.${origin.column} among ${JSON.stringify(entry.sources)}`,
          );
        }
      });
    });
  }

  it("given a view column computed from a table column, then the view's definition names the table column", async () => {
    const { rows } = await client.query("SELECT pg_catalog.pg_get_viewdef('contacts'::regclass, false) AS def");
    const lineage = outputLineage(rows[0].def, options);
    assert.ok(lineage !== "opaque");
    assert.deepEqual(
      lineage.map((entry) => (entry.kind === "column" ? [entry.name, entry.sources] : entry)),
      [
        ["contact", [{ relation: "customers", column: "email" }]],
        ["name", [{ relation: "customers", column: "name" }]],
        ["lowered", [{ relation: "customers", column: "email", derived: true }]],
      ],
    );
  });
});
