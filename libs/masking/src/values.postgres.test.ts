// PostgreSQL itself as the strictest client: every masked value, in text and in binary, must be accepted by the
// type's own input (text) or receive (binary) function when sent back as a parameter of that type.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { sharedPostgres } from "@agentgate/testkit";
import pg from "pg";
import { createHasher } from "./hmac.ts";
import { DETECT, type Mask, type MaskStrategy } from "./rules.ts";
import { maskValue } from "./values.ts";

const hasher = createHasher(Buffer.from("test key"));
const mask = (strategy: MaskStrategy): Mask => ({ strategy, keep: 4, rule: "public.t.c" });

/** A sample of each type, and what redact turns it into, as PostgreSQL prints it (`::text`). */
const SAMPLES = [
  { type: "text", sample: "'alice@example.com'", redacted: "****" },
  { type: "varchar", sample: "'alice@example.com'", redacted: "****" },
  { type: "char(10)", sample: "'AB123'", redacted: "****" },
  { type: "name", sample: "'secret_name'", redacted: "****" },
  { type: "xml", sample: "'<a>secret</a>'", redacted: "****" },
  { type: "json", sample: `'{"ssn": "123-45-6789"}'`, redacted: '"****"' },
  { type: "jsonb", sample: `'{"ssn": "123-45-6789"}'`, redacted: '"****"' },
  { type: "int2", sample: "1234", redacted: "0" },
  { type: "int4", sample: "123456", redacted: "0" },
  { type: "int8", sample: "9007199254740993", redacted: "0" },
  { type: "numeric", sample: "12345.678", redacted: "0" },
  { type: "float4", sample: "1.5", redacted: "0" },
  { type: "float8", sample: "3.25", redacted: "0" },
  { type: "bool", sample: "true", redacted: "false" },
  { type: "date", sample: "'2024-05-06'", redacted: "2000-01-01" },
  { type: "timestamp", sample: "'2024-05-06 07:08:09.123456'", redacted: "2000-01-01 00:00:00" },
  { type: "timestamptz", sample: "'2024-05-06 07:08:09+02'", redacted: "2000-01-01 00:00:00+00" },
  { type: "uuid", sample: "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", redacted: "00000000-0000-0000-0000-000000000000" },
  { type: "bytea", sample: "'\\xdeadbeef'", redacted: "\\x" },
] as const;

/** Hashing keeps equality across formats for these: a join of text and binary results still matches. */
const HASH_AGREES_ACROSS_FORMATS = new Set([
  "text",
  "varchar",
  "char(10)",
  "name",
  "int2",
  "int4",
  "int8",
  "numeric",
  "float4",
  "float8",
  "uuid",
  "bytea",
  "json",
]);

const raw = { getTypeParser: () => (value: unknown) => value };

describe("values accepted by PostgreSQL", () => {
  let client: pg.Client;
  before(async () => {
    const server = await sharedPostgres();
    client = new pg.Client({ connectionString: server.url() });
    await client.connect();
    await client.query("SET TIME ZONE 'UTC'; SET DateStyle = 'ISO, MDY'");
  });
  after(() => client?.end());

  /**
   * The server's own encoding of a sample, and the type's OID. node-postgres reads every field as UTF-8 text, so the
   * binary form is asked of the type's send function (as bytea) rather than read as a binary result.
   */
  async function encoded(type: string, sample: string, binary: boolean): Promise<{ oid: number; bytes: Buffer }> {
    const { rows } = await client.query({
      text: `SELECT t.oid, t.typsend::text AS send, ${sample}::${type}::text AS text FROM pg_type t WHERE t.oid = '${type}'::regtype`,
      types: raw,
    });
    const { oid, send, text } = rows[0] as { oid: string; send: string; text: string };
    if (!binary) return { oid: Number(oid), bytes: Buffer.from(text) };
    const sent = await client.query(`SELECT ${send}(${sample}::${type}) AS v`);
    return { oid: Number(oid), bytes: sent.rows[0].v as Buffer };
  }

  /** Sends a masked value back as a parameter of the type and returns how PostgreSQL prints it. */
  async function roundTrip(type: string, bytes: Uint8Array | null, binary: boolean): Promise<string | null> {
    const value = bytes === null ? null : binary ? Buffer.from(bytes) : Buffer.from(bytes).toString("utf8");
    const result = await client.query(`SELECT $1::${type}::text AS v`, [value]);
    return result.rows[0].v;
  }

  for (const { type, sample, redacted } of SAMPLES) {
    for (const binary of [false, true]) {
      const format = binary ? "binary" : "text";
      it(`given ${type} in ${format} format, every strategy yields bytes PostgreSQL accepts as ${type}`, async () => {
        const { oid, bytes } = await encoded(type, sample, binary);
        for (const strategy of ["redact", "partial", "hash", "null"] as const) {
          const out = maskValue(bytes, mask(strategy), { oid, format: binary ? 1 : 0 }, hasher);
          const printed = await roundTrip(type, out, binary);
          if (strategy === "null") assert.equal(printed, null);
          else assert.equal(typeof printed, "string", `${strategy} gives a value`);
          if (strategy === "redact") assert.equal(printed, redacted);
        }
        const detected = maskValue(bytes, DETECT, { oid, format: binary ? 1 : 0 }, hasher);
        await roundTrip(type, detected, binary);
      });
    }
    if (HASH_AGREES_ACROSS_FORMATS.has(type)) {
      it(`given ${type}, hashing the text and the binary form gives the same value`, async () => {
        const text = await encoded(type, sample, false);
        const binary = await encoded(type, sample, true);
        const fromText = await roundTrip(
          type,
          maskValue(text.bytes, mask("hash"), { oid: text.oid, format: 0 }, hasher),
          false,
        );
        const fromBinary = await roundTrip(
          type,
          maskValue(binary.bytes, mask("hash"), { oid: binary.oid, format: 1 }, hasher),
          true,
        );
        assert.equal(fromBinary, fromText);
      });
    }
  }

  it("given a numeric hashed in binary, then PostgreSQL reads the integer it was built from", async () => {
    const { oid, bytes } = await encoded("numeric", "'-0.000123'", true);
    const printed = await roundTrip("numeric", maskValue(bytes, mask("hash"), { oid, format: 1 }, hasher), true);
    assert.match(String(printed), /^\d{1,15}$/);
  });
});
