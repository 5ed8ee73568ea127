// Cost of masking result rows in the proxy. Not a test: run with
//   node --import tsx libs/masking/bench/mask.bench.ts
// 100,000 DataRows of 5 text-format columns (id, name, email, phone, created_at; ~110 bytes each), three of them
// masked, per strategy; and the same rows under a plan that masks nothing, which the proxy skips (passthrough).
// Reports the median of several passes: ns per row and MB/s of DataRow bytes in.
import {
  type ColumnType,
  createHasher,
  createRowMasker,
  DETECT,
  type Mask,
  type MaskPlan,
  maskDataRow,
} from "../src/index.ts";

const ROWS = 100_000;
const PASSES = 9;

const hasher = createHasher(Buffer.from("bench key"));
const mask = (strategy: Mask["strategy"]): Mask => ({ strategy, keep: 4, rule: "public.customers.*" });
const types: ColumnType[] = [
  { oid: 23, format: 0 },
  { oid: 25, format: 0 },
  { oid: 25, format: 0 },
  { oid: 25, format: 0 },
  { oid: 1184, format: 0 },
];

function dataRow(cells: readonly string[]): Buffer {
  const parts = cells.map((cell) => {
    const bytes = Buffer.from(cell);
    const length = Buffer.alloc(4);
    length.writeInt32BE(bytes.length);
    return Buffer.concat([length, bytes]);
  });
  const body = Buffer.concat([Buffer.from([0, cells.length]), ...parts]);
  const header = Buffer.alloc(5);
  header[0] = 0x44;
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}

const rows = Array.from({ length: ROWS }, (_, i) =>
  dataRow([
    String(100_000 + i),
    `Customer ${i} Name`,
    `customer.${i}@example.com`,
    `+1 415 555 ${String(i % 10_000).padStart(4, "0")}`,
    "2024-05-06 07:08:09.123456+00",
  ]),
);
const bytes = rows.reduce((sum, row) => sum + row.length, 0);

function measure(run: () => void): { nsPerRow: number; mbPerSecond: number } {
  run();
  const passes: number[] = [];
  for (let pass = 0; pass < PASSES; pass++) {
    const start = process.hrtime.bigint();
    run();
    passes.push(Number(process.hrtime.bigint() - start));
  }
  passes.sort((a, b) => a - b);
  const ns = passes[Math.floor(passes.length / 2)]!;
  return { nsPerRow: ns / ROWS, mbPerSecond: bytes / 1e6 / (ns / 1e9) };
}

const three = (m: Mask | undefined): MaskPlan => [undefined, m, m, m, undefined];
let sink = 0;

const cases: [string, () => void][] = [];
const compiled = (label: string, plan: MaskPlan) => {
  const masker = createRowMasker(plan, types, hasher);
  cases.push([
    label,
    () => {
      for (const row of rows) sink += masker.dataRow(row).length;
    },
  ]);
};
compiled("no masked column (passthrough)", three(undefined));
compiled("3 columns redact", three(mask("redact")));
compiled("3 columns partial", three(mask("partial")));
compiled("3 columns hash (HMAC-SHA256)", three(mask("hash")));
compiled("3 columns null", three(mask("null")));
compiled("3 columns detect (content detectors)", three(DETECT));
cases.push([
  "3 columns redact, maskDataRow() per row",
  () => {
    const plan = three(mask("redact"));
    for (const row of rows) sink += maskDataRow(row, plan, types, hasher).message.length;
  },
]);

const table = cases.map(([label, run]) => {
  const { nsPerRow, mbPerSecond } = measure(run);
  return { case: label, "ns/row": Math.round(nsPerRow), "MB/s": Math.round(mbPerSecond) };
});
console.log(`${ROWS} DataRows, ${(bytes / ROWS).toFixed(0)} bytes each on average (${(bytes / 1e6).toFixed(1)} MB)`);
console.table(table);
if (sink === 0) console.log("");
