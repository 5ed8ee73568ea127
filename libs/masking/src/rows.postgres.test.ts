// COPY output as PostgreSQL writes it, masked row by row, then loaded back with COPY FROM: the escapes and quoting
// of text and CSV survive, and each masked value is what the type's masker makes of the original.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { type FreshDatabase, findBinary, freshDatabase } from "@agentgate/testkit";
import pg from "pg";
import { createHasher } from "./hmac.ts";
import { createRowMasker, type MaskPlan } from "./rows.ts";
import type { Mask, MaskStrategy } from "./rules.ts";
import { type ColumnType, maskValue } from "./values.ts";

const hasher = createHasher(Buffer.from("test key"));
const mask = (strategy: MaskStrategy): Mask => ({ strategy, keep: 4, rule: "public.src.c" });

const TRICKY = [
  "plain",
  "tab\there",
  "new\nline",
  "back\\slash",
  'quote " and, comma',
  "\\N",
  "",
  "Grüße 🙂 \r end",
  null,
];

describe("COPY output masked and loaded back", () => {
  let db: FreshDatabase;
  let client: pg.Client;
  let psql: string;
  let types: ColumnType[];
  const plan: MaskPlan = [undefined, mask("partial"), mask("hash"), mask("redact"), mask("null")];

  before(async () => {
    psql = findBinary("psql", "apt-get install -y postgresql-client");
    db = await freshDatabase();
    client = new pg.Client({ connectionString: db.url });
    await client.connect();
    await client.query("CREATE TABLE src (id int, note text, email text, amount numeric, born date)");
    await client.query("CREATE TABLE dst (LIKE src)");
    for (const [i, note] of TRICKY.entries()) {
      await client.query("INSERT INTO src VALUES ($1, $2, $3, $4, $5)", [
        i,
        note,
        note === null ? null : `${note}@example.com`,
        i % 2 === 0 ? null : `${i}.5`,
        "2024-05-06",
      ]);
    }
    const { rows } = await client.query(
      "SELECT atttypid::int AS oid FROM pg_attribute WHERE attrelid = 'src'::regclass AND attnum > 0 ORDER BY attnum",
    );
    types = rows.map((row: { oid: number }) => ({ oid: row.oid, format: 0 }));
  });

  after(async () => {
    await client?.end();
    await db?.drop();
  });

  const run = (sql: string, input?: string) =>
    execFileSync(psql, ["--no-psqlrc", "-X", "-q", "-v", "ON_ERROR_STOP=1", db.url, "-c", sql], {
      input: input ?? "",
      maxBuffer: 1 << 24,
    });

  /** What each column of src becomes: the masker applied to the value's text output. */
  async function expected(): Promise<(string | null)[][]> {
    const { rows } = await client.query({
      text: "SELECT id::text, note::text, email::text, amount::text, born::text FROM src ORDER BY id",
      rowMode: "array",
    });
    return (rows as (string | null)[][]).map((row) =>
      row.map((value, i) => {
        const m = plan[i];
        if (m === undefined || value === null) return value;
        const out = maskValue(Buffer.from(value), m, types[i]!, hasher);
        return out === null ? null : Buffer.from(out).toString();
      }),
    );
  }

  async function loaded(): Promise<(string | null)[][]> {
    const { rows } = await client.query({
      text: "SELECT id::text, note::text, email::text, amount::text, born::text FROM dst ORDER BY id",
      rowMode: "array",
    });
    return rows as (string | null)[][];
  }

  it("given COPY TO in text format, when each row is masked, then COPY FROM loads exactly the masked values", async () => {
    const output = run("COPY src TO STDOUT").toString();
    // Text format escapes newlines inside values: rows end at every newline.
    const rows = output.split("\n").slice(0, -1);
    assert.equal(rows.length, TRICKY.length);
    const masker = createRowMasker(plan, types, hasher);
    const masked = rows.map((row) => masker.copyTextRow(Buffer.from(`${row}\n`)).toString()).join("");
    await client.query("TRUNCATE dst");
    run("COPY dst FROM STDIN", masked);
    assert.deepEqual(await loaded(), await expected());
    assert.deepEqual(masker.masked, [0, 8, 8, 4, 9]);
  });

  it("given COPY TO in CSV format, when each row is masked, then COPY FROM loads exactly the masked values", async () => {
    const output = run("COPY src TO STDOUT WITH (FORMAT csv)").toString();
    const masker = createRowMasker(plan, types, hasher);
    const masked = csvRows(output)
      .map((row) => masker.copyCsvRow(Buffer.from(row)).toString())
      .join("");
    await client.query("TRUNCATE dst");
    run("COPY dst FROM STDIN WITH (FORMAT csv)", masked);
    assert.deepEqual(await loaded(), await expected());
  });

  it("given COPY TO with DELIMITER '|' and NULL 'nil', when masked, then loaded back with the same options", async () => {
    const output = run("COPY src TO STDOUT WITH (DELIMITER '|', NULL 'nil')").toString();
    const masker = createRowMasker(plan, types, hasher);
    const masked = output
      .split("\n")
      .slice(0, -1)
      .map((row) => masker.copyTextRow(Buffer.from(`${row}\n`), { delimiter: "|", null: "nil" }).toString())
      .join("");
    await client.query("TRUNCATE dst");
    run("COPY dst FROM STDIN WITH (DELIMITER '|', NULL 'nil')", masked);
    assert.deepEqual(await loaded(), await expected());
  });
});

/** Splits CSV output into rows (newline included): a newline inside quotes belongs to the value. */
function csvRows(text: string): string[] {
  const rows: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '"') quoted = !quoted;
    else if (text[i] === "\n" && !quoted) {
      rows.push(text.slice(start, i + 1));
      start = i + 1;
    }
  }
  return rows;
}
