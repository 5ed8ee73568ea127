import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { describe, it } from "node:test";
import types from "pg-types";
import { createHasher } from "./hmac.ts";
import { DETECT, type Mask, type MaskStrategy } from "./rules.ts";
import { type ColumnType, encodeNumericInteger, maskValue, numericBinaryToText, OID } from "./values.ts";

const hasher = createHasher(Buffer.from("test key"));
const otherKey = createHasher(Buffer.from("another key"));

const mask = (strategy: MaskStrategy, keep = 4): Mask => ({ strategy, keep, rule: "public.t.c" });

/** What a client gets for a cell: pg-types' parser for the type and format, else the type's documented layout. */
function decode(oid: number, format: 0 | 1, bytes: Uint8Array | null): unknown {
  if (bytes === null) return null;
  const buffer = Buffer.from(bytes);
  if (format === 0) return types.getTypeParser(oid, "text")(buffer.toString("utf8"));
  switch (oid) {
    case OID.date: {
      // int32 days since 2000-01-01
      assert.equal(buffer.length, 4, "binary date is 4 bytes");
      return new Date(Date.UTC(2000, 0, 1) + buffer.readInt32BE(0) * 86_400_000).toISOString().slice(0, 10);
    }
    case OID.uuid: {
      assert.equal(buffer.length, 16, "binary uuid is 16 bytes");
      const h = buffer.toString("hex");
      return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
    }
    case OID.bytea:
      return buffer;
    case OID.jsonb:
      assert.equal(buffer[0], 1, "binary jsonb starts with version 1");
      return JSON.parse(buffer.subarray(1).toString("utf8"));
    case OID.json:
      return JSON.parse(buffer.toString("utf8"));
    case OID.varchar:
    case OID.bpchar:
    case OID.name:
    case OID.xml:
      return buffer.toString("utf8");
    default: {
      const parser = types.getTypeParser(oid, "binary");
      return parser(buffer);
    }
  }
}

function masked(strategy: MaskStrategy | Mask, type: ColumnType, value: Uint8Array | string | null, h = hasher) {
  const bytes = typeof value === "string" ? Buffer.from(value, "utf8") : value;
  const m = typeof strategy === "string" ? mask(strategy) : strategy;
  const out = maskValue(bytes, m, type, h);
  return { bytes: out, value: decode(type.oid, type.format === 1 ? 1 : 0, out) };
}

const int16 = (n: number) => Buffer.from([(n >> 8) & 0xff, n & 0xff]);
const int32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};
const int64 = (n: bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(n);
  return b;
};
const float4 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeFloatBE(n);
  return b;
};
const float8 = (n: number) => {
  const b = Buffer.alloc(8);
  b.writeDoubleBE(n);
  return b;
};
/** 12345.678 as numeric_send writes it: ndigits 3, weight 1, sign +, dscale 3, digits 1 2345 6780. */
const NUMERIC_12345_678 = Buffer.from([0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1a, 0x7c]);
const UUID = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";

describe("values: text-like types", () => {
  for (const [name, oid] of [
    ["text", OID.text],
    ["varchar", OID.varchar],
    ["name", OID.name],
    ["unknown", OID.unknown],
    ["citext (textLike)", 16_500],
  ] as const) {
    for (const format of [0, 1] as const) {
      const type: ColumnType = { oid, format, ...(oid === 16_500 ? { textLike: true } : {}) };
      const where = `${name} (${format === 0 ? "text" : "binary"})`;
      it(`given a ${where} cell, when redacted, then the client reads ****`, () => {
        assert.equal(masked("redact", type, "alice@example.com").value, "****");
      });
      it(`given a ${where} cell, when partially masked, then only the last 4 characters show`, () => {
        assert.equal(masked("partial", type, "alice@example.com").value, "****.com");
      });
      it(`given a ${where} cell, when hashed, then it reads h: and 16 hex digits, the same for the same value`, () => {
        const first = masked("hash", type, "alice@example.com").value;
        assert.match(String(first), /^h:[0-9a-f]{16}$/);
        const expected = createHmac("sha256", "test key").update("alice@example.com").digest("hex").slice(0, 16);
        assert.equal(first, `h:${expected}`);
        assert.equal(masked("hash", type, "alice@example.com").value, first);
        assert.notEqual(masked("hash", type, "bob@example.com").value, first);
        assert.notEqual(masked("hash", type, "alice@example.com", otherKey).value, first);
      });
      it(`given a ${where} cell, when nulled, then the client reads NULL`, () => {
        assert.equal(masked("null", type, "alice@example.com").bytes, null);
      });
    }
  }

  it("given a NULL cell, when masked with any strategy but null, then it stays NULL", () => {
    for (const strategy of ["redact", "partial", "hash", "null"] as const) {
      assert.equal(masked(strategy, { oid: OID.text, format: 0 }, null).bytes, null);
    }
  });

  it("given a short value, when partially masked, then at most half of it shows", () => {
    const type = { oid: OID.text, format: 0 };
    assert.equal(masked("partial", type, "abc").value, "****c");
    assert.equal(masked("partial", type, "ab").value, "****b");
    assert.equal(masked("partial", type, "a").value, "****");
    assert.equal(masked(mask("partial", 2), type, "4111111111111111").value, "****11");
  });

  it("given multi-byte characters, when partially masked, then whole code points are kept", () => {
    assert.equal(masked("partial", { oid: OID.text, format: 0 }, "Grüße aus Köln 🙂").value, "****ln 🙂");
  });

  it("given a bpchar cell, when masked, then its padding is not part of the tail nor of the hash", () => {
    for (const format of [0, 1] as const) {
      const type = { oid: OID.bpchar, format };
      assert.equal(masked("redact", type, "AB123     ").value, "****");
      assert.equal(masked("partial", type, "AB123     ").value, "****23");
      assert.equal(masked("hash", type, "AB123     ").value, masked("hash", { oid: OID.text, format }, "AB123").value);
    }
  });

  it("given an xml cell, when masked, then it is well-formed content (partial gives what redact gives)", () => {
    for (const format of [0, 1] as const) {
      const type = { oid: OID.xml, format };
      assert.equal(masked("redact", type, "<a>secret</a>").value, "****");
      assert.equal(masked("partial", type, "<a>secret</a>").value, "****");
      assert.match(String(masked("hash", type, "<a>secret</a>").value), /^h:[0-9a-f]{16}$/);
    }
  });

  it("given a text cell and the detect mask, then only what a detector recognises is replaced", () => {
    const type = { oid: OID.text, format: 0 };
    const value = Buffer.from("call alice@example.com about 4111 1111 1111 1111");
    assert.equal(masked(DETECT, type, value).value, "call [redacted:email] about [redacted:card]");
    const clean = Buffer.from("nothing to see");
    assert.equal(maskValue(clean, DETECT, type, hasher), clean, "unchanged values are returned as they are");
  });

  it("given a text[] cell in text format and the detect mask, then elements are redacted and it still parses", () => {
    const value = masked(DETECT, { oid: OID.textArray, format: 0 }, '{"a@example.com",plain}').value;
    assert.deepEqual(value, ["[redacted:email]", "plain"]);
  });
});

describe("values: json and jsonb", () => {
  for (const oid of [OID.json, OID.jsonb]) {
    for (const format of [0, 1] as const) {
      const type = { oid, format };
      const where = `${oid === OID.json ? "json" : "jsonb"} (${format === 0 ? "text" : "binary"})`;
      const encode = (json: string) =>
        oid === OID.jsonb && format === 1 ? Buffer.concat([Buffer.of(1), Buffer.from(json)]) : Buffer.from(json);
      it(`given a ${where} cell, when redacted, then the client parses the JSON string "****"`, () => {
        assert.equal(masked("redact", type, encode('{"ssn":"123-45-6789"}')).value, "****");
      });
      it(`given a ${where} string, when partially masked, then the client parses "****" and its tail`, () => {
        assert.equal(masked("partial", type, encode('"4111111111111111"')).value, "****1111");
      });
      it(`given a ${where} cell, when hashed, then the client parses a stable "h:..." string`, () => {
        const first = masked("hash", type, encode('{"a":1}')).value;
        assert.match(String(first), /^h:[0-9a-f]{16}$/);
        assert.equal(masked("hash", type, encode('{"a":1}')).value, first);
      });
      it(`given a ${where} cell, when detected, then it stays valid JSON with the match replaced`, () => {
        const value = masked(DETECT, type, encode('{"note":"mail bob@example.com","card":4111111111111111,"n":42}'));
        assert.deepEqual(value.value, { note: "mail [redacted:email]", card: "[redacted:card]", n: 42 });
      });
      it(`given a ${where} cell, when nulled, then NULL`, () => {
        assert.equal(masked("null", type, encode("{}")).bytes, null);
      });
    }
  }

  it("given binary jsonb of an unknown version, when masked, then NULL rather than guessed bytes", () => {
    assert.equal(masked("hash", { oid: OID.jsonb, format: 1 }, Buffer.from([2, 0x7b, 0x7d])).bytes, null);
  });
});

describe("values: integers", () => {
  const cases = [
    { name: "int2", oid: OID.int2, text: "1234", binary: int16(1234), min: -(2 ** 15), max: 2 ** 15 - 1 },
    { name: "int4", oid: OID.int4, text: "123456", binary: int32(123456), min: -(2 ** 31), max: 2 ** 31 - 1 },
    {
      name: "int8",
      oid: OID.int8,
      text: "9007199254740993",
      binary: int64(9007199254740993n),
      min: -(2 ** 63),
      max: 2 ** 63,
    },
  ];
  for (const c of cases) {
    for (const format of [0, 1] as const) {
      const type = { oid: c.oid, format };
      const sample = format === 0 ? c.text : c.binary;
      const where = `${c.name} (${format === 0 ? "text" : "binary"})`;
      it(`given a ${where} cell, when redacted or partially masked, then the client reads 0`, () => {
        assert.equal(Number(masked("redact", type, sample).value), 0);
        assert.equal(Number(masked("partial", type, sample).value), 0);
      });
      it(`given a ${where} cell, when hashed, then the client reads an integer in the type's range`, () => {
        const value = masked("hash", type, sample).value;
        const n = Number(value);
        assert.ok(Number.isInteger(n) && n >= c.min && n <= c.max, `${value} in range`);
        assert.notEqual(n, Number(c.text));
      });
      it(`given a ${where} cell, when nulled, then NULL`, () => {
        assert.equal(masked("null", type, sample).bytes, null);
      });
    }
    it(`given the same ${c.name} value in text and binary, when hashed, then both read the same integer`, () => {
      const text = masked("hash", { oid: c.oid, format: 0 }, c.text).value;
      const binary = masked("hash", { oid: c.oid, format: 1 }, c.binary).value;
      assert.equal(String(binary), String(text));
    });
  }
});

describe("values: numeric", () => {
  it("reads binary numerics as numeric_out prints them", () => {
    assert.equal(numericBinaryToText(NUMERIC_12345_678), "12345.678");
    assert.equal(numericBinaryToText(Buffer.from([0, 1, 0xff, 0xff, 0, 0, 0, 1, 0x13, 0x88])), "0.5");
    assert.equal(numericBinaryToText(Buffer.from([0, 0, 0, 0, 0xc0, 0, 0, 0])), "NaN");
    assert.equal(numericBinaryToText(Buffer.from([0, 1, 0, 0, 0x40, 0, 0, 0, 0, 42])), "-42");
  });

  it("writes integers as numeric_send does", () => {
    for (const n of [0, 1, 9999, 10000, 123456789012345, 2 ** 48 - 1]) {
      assert.equal(numericBinaryToText(encodeNumericInteger(n)), String(n));
      assert.equal(types.getTypeParser(OID.numeric, "binary")(Buffer.from(encodeNumericInteger(n))), n);
    }
  });

  for (const format of [0, 1] as const) {
    const type = { oid: OID.numeric, format };
    const sample = format === 0 ? "12345.678" : NUMERIC_12345_678;
    const where = `numeric (${format === 0 ? "text" : "binary"})`;
    it(`given a ${where} cell, when redacted or partially masked, then the client reads 0`, () => {
      assert.equal(Number(masked("redact", type, sample).value), 0);
      assert.equal(Number(masked("partial", type, sample).value), 0);
    });
    it(`given a ${where} cell, when hashed, then the client reads a whole number exact in a double`, () => {
      const n = Number(masked("hash", type, sample).value);
      assert.ok(Number.isSafeInteger(n) && n >= 0, `${n}`);
    });
  }

  it("given the same numeric in text and binary, when hashed, then both read the same number", () => {
    const text = masked("hash", { oid: OID.numeric, format: 0 }, "12345.678").value;
    const binary = masked("hash", { oid: OID.numeric, format: 1 }, NUMERIC_12345_678).value;
    assert.equal(String(binary), text);
  });
});

describe("values: floats", () => {
  for (const [name, oid, binary] of [
    ["float4", OID.float4, float4(1.5)],
    ["float8", OID.float8, float8(3.25)],
  ] as const) {
    for (const format of [0, 1] as const) {
      const type = { oid, format };
      const sample = format === 0 ? String(oid === OID.float4 ? 1.5 : 3.25) : binary;
      const where = `${name} (${format === 0 ? "text" : "binary"})`;
      it(`given a ${where} cell, when redacted, then the client reads 0`, () => {
        assert.equal(masked("redact", type, sample).value, 0);
        assert.equal(masked("partial", type, sample).value, 0);
      });
      it(`given a ${where} cell, when hashed, then the client reads an integer the type holds exactly`, () => {
        const n = masked("hash", type, sample).value as number;
        assert.ok(Number.isInteger(n) && n >= 0 && n < (oid === OID.float4 ? 2 ** 24 : 2 ** 53), `${n}`);
      });
    }
    it(`given the same ${name} in text and binary, when hashed, then both read the same number`, () => {
      const text = masked("hash", { oid, format: 0 }, oid === OID.float4 ? "1.5" : "3.25").value;
      assert.equal(masked("hash", { oid, format: 1 }, binary).value, text);
    });
  }
});

describe("values: bool, dates, uuid, bytea", () => {
  for (const format of [0, 1] as const) {
    const f = format === 0 ? "text" : "binary";
    it(`given a bool (${f}) cell, when masked, then the client reads false`, () => {
      for (const strategy of ["redact", "partial", "hash"] as const) {
        assert.equal(masked(strategy, { oid: OID.bool, format }, format === 0 ? "t" : Buffer.of(1)).value, false);
      }
    });

    it(`given a date (${f}) cell, when masked, then the client reads 2000-01-01`, () => {
      const sample = format === 0 ? "2024-05-06" : int32(8892);
      for (const strategy of ["redact", "partial", "hash"] as const) {
        const value = masked(strategy, { oid: OID.date, format }, sample).value;
        if (format === 0) assert.equal((value as Date).getTime(), new Date(2000, 0, 1).getTime());
        else assert.equal(value, "2000-01-01");
      }
    });

    it(`given a timestamp (${f}) cell, when masked, then the client reads 2000-01-01 00:00:00`, () => {
      const sample = format === 0 ? "2024-05-06 07:08:09" : int64(768_294_489_000_000n);
      const value = masked("redact", { oid: OID.timestamp, format }, sample).value as Date;
      assert.equal(value.getTime(), new Date(2000, 0, 1).getTime());
    });

    it(`given a timestamptz (${f}) cell, when masked, then the client reads 2000-01-01 00:00:00 UTC`, () => {
      const sample = format === 0 ? "2024-05-06 07:08:09+02" : int64(768_287_289_000_000n);
      for (const strategy of ["redact", "partial", "hash"] as const) {
        const value = masked(strategy, { oid: OID.timestamptz, format }, sample).value as Date;
        assert.equal(value.getTime(), Date.UTC(2000, 0, 1));
      }
    });

    it(`given a uuid (${f}) cell, when redacted, then the nil uuid; when hashed, a stable version-8 uuid`, () => {
      const type = { oid: OID.uuid, format };
      const sample = format === 0 ? UUID : Buffer.from(UUID.replace(/-/g, ""), "hex");
      assert.equal(masked("redact", type, sample).value, "00000000-0000-0000-0000-000000000000");
      const hashed = masked("hash", type, sample).value;
      assert.match(String(hashed), /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      assert.equal(
        masked(
          "hash",
          { oid: OID.uuid, format: format === 0 ? 1 : 0 },
          format === 0 ? Buffer.from(UUID.replace(/-/g, ""), "hex") : UUID,
        ).value,
        hashed,
      );
    });

    it(`given a bytea (${f}) cell, when redacted, then empty; when hashed, 8 stable bytes`, () => {
      const type = { oid: OID.bytea, format };
      const sample = format === 0 ? "\\xdeadbeef" : Buffer.from("deadbeef", "hex");
      assert.deepEqual(masked("redact", type, sample).value, Buffer.alloc(0));
      const hashed = masked("hash", type, sample).value as Buffer;
      assert.equal(hashed.length, 8);
      const other = masked(
        "hash",
        { oid: OID.bytea, format: format === 0 ? 1 : 0 },
        format === 0 ? Buffer.from("deadbeef", "hex") : "\\xdeadbeef",
      );
      assert.deepEqual(other.value, hashed, "text and binary hash alike");
    });
  }

  it("given a bytea in the old escape format, when hashed, then it hashes like its hex form", () => {
    const type = { oid: OID.bytea, format: 0 };
    assert.deepEqual(masked("hash", type, "ab\\000\\\\").value, masked("hash", type, "\\x6162005c").value);
  });
});

describe("values: types without a safe replacement", () => {
  for (const [name, type] of [
    ["int4[] (binary)", { oid: 1007, format: 1 }],
    ["int4[] (text)", { oid: 1007, format: 0 }],
    ["interval (text)", { oid: 1186, format: 0 }],
    ["inet (binary)", { oid: 869, format: 1 }],
    ['"char" (text)', { oid: OID.char, format: 0 }],
    ["a user-defined type (binary)", { oid: 16_500, format: 1 }],
    ["a user type the catalog says is no string", { oid: 16_500, format: 0, textLike: false }],
  ] as const) {
    it(`given ${name}, when masked, then the client reads NULL`, () => {
      for (const strategy of ["redact", "partial", "hash", "null"] as const) {
        assert.equal(masked(strategy, type, Buffer.from("anything")).bytes, null);
      }
    });
  }

  it("given a user-defined type in text format (an enum, citext), when redacted, then ****", () => {
    assert.equal(masked("redact", { oid: 16_500, format: 0 }, "gold").value, "****");
  });

  it("given a non-text type and the detect mask, then the value is left as it is", () => {
    const value = int32(42);
    assert.equal(maskValue(value, DETECT, { oid: OID.int4, format: 1 }, hasher), value);
  });
});
