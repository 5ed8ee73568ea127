import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MaskingError } from "./errors.ts";
import { createHasher } from "./hmac.ts";
import { createRowMasker, maskCopyCsvRow, maskCopyTextRow, maskDataRow } from "./rows.ts";
import { DETECT, type Mask, type MaskStrategy } from "./rules.ts";
import { type ColumnType, cellMasker, OID } from "./values.ts";

const hasher = createHasher(Buffer.from("test key"));
const mask = (strategy: MaskStrategy, keep = 4): Mask => ({ strategy, keep, rule: "public.t.c" });
const TEXT: ColumnType = { oid: OID.text, format: 0 };
const INT4_BINARY: ColumnType = { oid: OID.int4, format: 1 };

/** A DataRow message: 'D', int32 length, int16 count, then int32 length (-1 for NULL) and bytes per column. */
function dataRow(cells: readonly (string | Buffer | null)[]): Buffer {
  const parts = cells.map((cell) => {
    if (cell === null) return Buffer.from([0xff, 0xff, 0xff, 0xff]);
    const bytes = typeof cell === "string" ? Buffer.from(cell) : cell;
    const length = Buffer.alloc(4);
    length.writeInt32BE(bytes.length);
    return Buffer.concat([length, bytes]);
  });
  const body = Buffer.concat([Buffer.from([cells.length >> 8, cells.length & 0xff]), ...parts]);
  const header = Buffer.alloc(5);
  header[0] = 0x44;
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}

/** Reads a DataRow back, checking its framing as a client would. */
function cellsOf(message: Buffer): (Buffer | null)[] {
  assert.equal(message[0], 0x44);
  assert.equal(message.readInt32BE(1), message.length - 1, "length word");
  const count = message.readInt16BE(5);
  const cells: (Buffer | null)[] = [];
  let at = 7;
  for (let i = 0; i < count; i++) {
    const length = message.readInt32BE(at);
    at += 4;
    cells.push(length === -1 ? null : message.subarray(at, at + length));
    if (length > 0) at += length;
  }
  assert.equal(at, message.length, "no trailing bytes");
  return cells;
}

const int4 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};

describe("rows: DataRow", () => {
  const row = dataRow(["7", "alice@example.com", null, "4111111111111111", "plain"]);
  const types = [TEXT, TEXT, TEXT, TEXT, TEXT];

  it("given a plan that masks nothing, when a row is masked, then the very same Buffer comes back", () => {
    const masker = createRowMasker([undefined, undefined, undefined, undefined, undefined], types, hasher);
    assert.equal(masker.passthrough, true);
    assert.equal(masker.dataRow(row), row);
    assert.equal(maskDataRow(row, [undefined, undefined, undefined, undefined, undefined], types, hasher).message, row);
  });

  it("given masks on two columns, when a row is masked, then those cells change and every other byte is kept", () => {
    const { message, masked } = maskDataRow(
      row,
      [undefined, mask("redact"), undefined, mask("partial"), undefined],
      types,
      hasher,
    );
    assert.deepEqual(
      cellsOf(message).map((cell) => cell?.toString() ?? null),
      ["7", "****", null, "****1111", "plain"],
    );
    assert.deepEqual(masked, [0, 1, 0, 1, 0]);
  });

  it("given a NULL cell under redact, then it stays NULL and is not counted", () => {
    const { message, masked } = maskDataRow(
      row,
      [undefined, undefined, mask("redact"), undefined, undefined],
      types,
      hasher,
    );
    assert.equal(message, row, "nothing to change: the same Buffer");
    assert.deepEqual(masked, [0, 0, 0, 0, 0]);
  });

  it("given the null strategy, then the cell is sent as SQL NULL", () => {
    const { message, masked } = maskDataRow(
      row,
      [undefined, mask("null"), mask("null"), undefined, undefined],
      types,
      hasher,
    );
    assert.deepEqual(cellsOf(message).slice(0, 3), [Buffer.from("7"), null, null]);
    assert.deepEqual(masked, [0, 1, 0, 0, 0]);
  });

  it("given a binary int4 column hashed, then the cell is 4 bytes, and equal inputs give equal outputs", () => {
    const binaryRow = (n: number) => dataRow([int4(n), "x"]);
    const plan = [mask("hash"), undefined];
    const masker = createRowMasker(plan, [INT4_BINARY, TEXT], hasher);
    const a = cellsOf(masker.dataRow(binaryRow(42)))[0]!;
    const b = cellsOf(masker.dataRow(binaryRow(42)))[0]!;
    const c = cellsOf(masker.dataRow(binaryRow(43)))[0]!;
    assert.equal(a.length, 4);
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
    assert.deepEqual(masker.masked, [3, 0], "counts add up over the rows of a result set");
  });

  it("given the detect mask, then only rows with something recognised change", () => {
    const masker = createRowMasker([DETECT], [TEXT], hasher);
    const clean = dataRow(["nothing here"]);
    assert.equal(masker.dataRow(clean), clean);
    assert.deepEqual(
      cellsOf(masker.dataRow(dataRow(["key AKIAIOSFODNN7EXAMPLE"])))[0]?.toString(),
      "key [redacted:aws_access_key]",
    );
    assert.deepEqual(masker.masked, [1]);
  });

  it("given a row of another width than the plan, then plan_mismatch", () => {
    assert.throws(
      () => maskDataRow(dataRow(["a", "b"]), [mask("redact")], [TEXT], hasher),
      (error: unknown) => error instanceof MaskingError && error.code === "plan_mismatch",
    );
    assert.throws(() => createRowMasker([mask("redact")], [TEXT, TEXT], hasher), /plan for 1 columns given 2/);
  });

  it("given every truncation of a DataRow (length word adjusted), then malformed_message and nothing else", () => {
    const masker = createRowMasker([mask("redact"), mask("hash"), undefined], [TEXT, INT4_BINARY, TEXT], hasher);
    const full = dataRow(["secret", int4(5), "tail"]);
    for (let cut = 0; cut < full.length; cut++) {
      const truncated = Buffer.from(full.subarray(0, cut));
      if (cut >= 5) truncated.writeInt32BE(cut - 1, 1);
      assert.throws(
        () => masker.dataRow(truncated),
        (error: unknown) => error instanceof MaskingError && /malformed_message|plan_mismatch/.test(error.code),
        `cut at ${cut}`,
      );
    }
    const padded = Buffer.concat([full, Buffer.of(0)]);
    padded.writeInt32BE(padded.length - 1, 1);
    assert.throws(() => masker.dataRow(padded), /bytes after its last column/);
    assert.throws(() => masker.dataRow(dataRow(["secret", Buffer.of(1, 2), "tail"])), /not of its type/);
  });

  it("given random bytes, then it either masks a valid row or throws MaskingError, never anything else", () => {
    const masker = createRowMasker([mask("partial"), mask("hash")], [TEXT, INT4_BINARY], hasher);
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    for (let i = 0; i < 2000; i++) {
      const bytes = Buffer.from(Array.from({ length: random() % 40 }, () => random() & 0xff));
      if (bytes.length > 0 && i % 2 === 0) bytes[0] = 0x44;
      if (bytes.length > 5 && i % 4 === 0) bytes.writeInt32BE(bytes.length - 1, 1);
      try {
        cellsOf(masker.dataRow(bytes));
      } catch (error) {
        assert.ok(error instanceof MaskingError || error instanceof assert.AssertionError, String(error));
      }
    }
  });
});

describe("rows: COPY text", () => {
  it("given a plan that masks nothing, then the same Buffer", () => {
    const line = Buffer.from("1\talice\n");
    assert.equal(maskCopyTextRow(line, [undefined, undefined], hasher).line, line);
  });

  it("given escaped values, when one column is masked, then the others keep their bytes and the mask sees the real value", () => {
    // Column 2 holds "ab\tc\\d\nxyz" (tab, backslash, newline), written with COPY's escapes.
    const line = Buffer.from("1\tab\\tc\\\\d\\nxyz\tkeep\\tme\n");
    const { line: out, masked } = maskCopyTextRow(line, [undefined, mask("partial"), undefined], hasher);
    assert.equal(out.toString(), "1\t****\\nxyz\tkeep\\tme\n");
    assert.deepEqual(masked, [0, 1, 0]);
  });

  it("given a masked tail with a tab or a backslash, then it is escaped again", () => {
    const line = Buffer.from("abcdef\\\\y\\tz\n");
    assert.equal(maskCopyTextRow(line, [mask("partial", 4)], hasher).line.toString(), "****\\\\y\\tz\n");
  });

  it("given octal and hex escapes, then they are read as bytes", () => {
    const hashed = (text: string) => maskCopyTextRow(Buffer.from(`${text}\n`), [mask("hash")], hasher).line.toString();
    assert.equal(hashed("\\101\\x42C"), hashed("ABC"));
  });

  it("given \\N, then NULL stays NULL; the null strategy writes \\N", () => {
    assert.equal(
      maskCopyTextRow(Buffer.from("\\N\tb\n"), [mask("redact"), mask("null")], hasher).line.toString(),
      "\\N\t\\N\n",
    );
  });

  it("given DELIMITER ',' and NULL '', then fields split on commas, an escaped comma stays inside", () => {
    const { line } = maskCopyTextRow(
      Buffer.from("a\\,b,,c\n"),
      [mask("partial", 1), mask("redact"), mask("redact")],
      hasher,
      {
        delimiter: ",",
        null: "",
      },
    );
    assert.equal(line.toString(), "****b,,****\n");
  });

  it("given typed columns, then a masked value keeps its type (it can be loaded back)", () => {
    const { line } = maskCopyTextRow(Buffer.from("42\t2024-05-06\n"), [mask("redact"), mask("redact")], hasher, {
      types: [
        { oid: OID.int4, format: 1 },
        { oid: OID.date, format: 1 },
      ],
    });
    assert.equal(line.toString(), "0\t2000-01-01\n", "COPY text always carries text output, whatever the format says");
  });

  it("given a row of another width, then plan_mismatch", () => {
    assert.throws(
      () => maskCopyTextRow(Buffer.from("a\tb\tc\n"), [mask("redact"), undefined], hasher),
      /more than 2 columns/,
    );
    assert.throws(
      () => maskCopyTextRow(Buffer.from("a\n"), [mask("redact"), undefined], hasher),
      /1 columns for a plan of 2/,
    );
  });
});

describe("rows: COPY CSV", () => {
  it("given quoted fields with delimiters, quotes and newlines, when another column is masked, then they are kept", () => {
    const line = Buffer.from('1,"a, ""quoted""\nvalue",secret\n');
    const { line: out, masked } = maskCopyCsvRow(line, [undefined, undefined, mask("redact")], hasher);
    assert.equal(out.toString(), '1,"a, ""quoted""\nvalue","****"\n');
    assert.deepEqual(masked, [0, 0, 1]);
  });

  it("given a quoted field masked, then the mask sees its value and the output is quoted", () => {
    const { line } = maskCopyCsvRow(Buffer.from('"Doe, ""JD"" John",x\n'), [mask("partial", 3), undefined], hasher);
    assert.equal(line.toString(), '"****ohn",x\n');
  });

  it("given an unquoted empty field, then NULL stays NULL; a quoted empty string is a value", () => {
    const plan = [mask("redact"), mask("redact"), mask("null")];
    assert.equal(maskCopyCsvRow(Buffer.from(',"",z\n'), plan, hasher).line.toString(), ',"****",\n');
  });

  it("given a partial tail holding a quote, then it is doubled", () => {
    assert.equal(
      maskCopyCsvRow(Buffer.from('"abcdef""cd"\n'), [mask("partial", 3)], hasher).line.toString(),
      '"****""cd"\n',
    );
  });

  it("given ESCAPE '\\', then backslash-quote is a quote inside a field", () => {
    const { line } = maskCopyCsvRow(Buffer.from('"x\\"yz",k\n'), [mask("partial", 2), undefined], hasher, {
      escape: "\\",
    });
    assert.equal(line.toString(), '"****yz",k\n');
    const quoted = maskCopyCsvRow(Buffer.from('"abcd\\"e"\n'), [mask("partial", 2)], hasher, { escape: "\\" });
    assert.equal(quoted.line.toString(), '"****\\"e"\n');
  });

  it("given an unterminated quote, then malformed_message", () => {
    assert.throws(
      () => maskCopyCsvRow(Buffer.from('"abc\n'), [mask("redact")], hasher),
      (error: unknown) => error instanceof MaskingError && error.code === "malformed_message",
    );
  });
});

describe("rows: DataRow built in one pass", () => {
  // Plans whose masked columns are all fixed, partial or hash strings are written straight into the output row;
  // each cell must be exactly what the column's own masker returns.
  const values = [
    "",
    "a",
    "ab",
    "abcdefgh",
    "alice@example.com",
    "Zoë Ålström",
    "日本語のテキスト",
    "emoji 🙂🙂 end",
    "padded    ",
    "x".repeat(300),
  ];
  const types: ColumnType[] = [
    { oid: OID.int4, format: 1 },
    { oid: OID.text, format: 0 },
    { oid: OID.bpchar, format: 0 },
    { oid: OID.varchar, format: 1 },
    { oid: OID.text, format: 0 },
    { oid: OID.int4, format: 0 },
  ];
  for (const [name, plan] of [
    [
      "partial 4, hash, partial 2, redact",
      [undefined, mask("partial"), mask("hash"), mask("partial", 2), mask("redact"), undefined],
    ],
    ["hash, partial, hash, null", [undefined, mask("hash"), mask("partial"), mask("hash"), mask("null"), undefined]],
    ["partial 0 and 99", [undefined, mask("partial", 0), mask("partial", 99), undefined, undefined, undefined]],
  ] as const) {
    it(`given ${name}, when rows of all sorts are masked, then each cell is what the column's masker makes`, () => {
      const masker = createRowMasker(plan, types, hasher);
      const expected = plan.map((m, i) => (m === undefined ? undefined : cellMasker(m, types[i]!)));
      for (const [n, value] of values.entries()) {
        const other = values[(n + 3) % values.length]!;
        for (const cells of [
          [int4(n), value, other, value, other, String(n)],
          [null, value, null, other, null, "0"],
          [int4(-1), null, `${value} `, null, value, null],
        ]) {
          const out = cellsOf(masker.dataRow(dataRow(cells)));
          for (let i = 0; i < cells.length; i++) {
            const cell = cells[i]!;
            const input = cell === null ? null : typeof cell === "string" ? Buffer.from(cell) : cell;
            const want = input === null ? null : expected[i] === undefined ? input : expected[i]!(input, hasher);
            assert.deepEqual(
              out[i] === null ? null : Buffer.from(out[i]!),
              want === null ? null : Buffer.from(want),
              `column ${i} of ${JSON.stringify(cells.map(String))}`,
            );
          }
        }
      }
    });
  }

  it("given rows larger than a slab's quarter among small ones, when masked, then each comes back whole", () => {
    const masker = createRowMasker([mask("partial"), mask("hash")], [TEXT, TEXT], hasher);
    for (const size of [10, 20_000, 10, 70_000, 10]) {
      const value = "y".repeat(size);
      const [first, second] = cellsOf(masker.dataRow(dataRow([value, value])));
      assert.equal(String(first), "****yyyy");
      assert.equal(String(second), Buffer.from(cellMasker(mask("hash"), TEXT)(Buffer.from(value), hasher)!).toString());
    }
  });

  it("given a masked column whose cells are all NULL, when masked, then the very same row comes back", () => {
    const row = dataRow(["1", null]);
    assert.equal(createRowMasker([undefined, mask("partial")], [TEXT, TEXT], hasher).dataRow(row), row);
  });
});
