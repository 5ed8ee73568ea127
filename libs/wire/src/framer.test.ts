import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { serialize } from "pg-protocol";
import { ProtocolError } from "./errors.ts";
import { MessageFramer } from "./framer.ts";

// A realistic frontend stream: extended query with parameters, a simple query, COPY data and Terminate.
const fixture = Buffer.concat([
  serialize.parse({ name: "s1", text: "SELECT $1::int + $2::int", types: [23, 23] }),
  serialize.bind({ statement: "s1", values: ["1", "2"] }),
  serialize.describe({ type: "P" }),
  serialize.execute({ rows: 0 }),
  serialize.sync(),
  serialize.query("SELECT 'héllo'; SELECT 2"),
  serialize.copyData(Buffer.alloc(3000, 0x61)),
  serialize.copyDone(),
  serialize.flush(),
  serialize.end(),
]);

function frame(chunks: Buffer[], max = 1 << 20): Buffer[] {
  const framer = new MessageFramer(max);
  const out: Buffer[] = [];
  for (const chunk of chunks) framer.push(chunk, (_type, message) => out.push(Buffer.from(message)));
  assert.equal(framer.buffered, 0, "no bytes left over after whole messages");
  return out;
}

const expected = frame([fixture]);

describe("MessageFramer", () => {
  it("splits a stream into its messages", () => {
    assert.deepEqual(
      expected.map((m) => String.fromCharCode(m[0]!)),
      ["P", "B", "D", "E", "S", "Q", "d", "c", "H", "X"],
    );
    assert.deepEqual(Buffer.concat(expected), fixture);
  });

  it("yields the same messages when the stream is cut at every offset", () => {
    for (let cut = 0; cut <= fixture.length; cut++) {
      assert.deepEqual(frame([fixture.subarray(0, cut), fixture.subarray(cut)]), expected, `cut at ${cut}`);
    }
  });

  it("yields the same messages when cut at every pair of offsets", () => {
    const small = fixture.subarray(
      0,
      expected.slice(0, 6).reduce((n, m) => n + m.length, 0),
    );
    const want = frame([small]);
    for (let a = 0; a <= small.length; a++) {
      for (let b = a; b <= small.length; b += 3) {
        assert.deepEqual(frame([small.subarray(0, a), small.subarray(a, b), small.subarray(b)]), want, `${a}/${b}`);
      }
    }
  });

  it("yields the same messages when fed one byte at a time", () => {
    const bytes = [...fixture].map((b) => Buffer.from([b]));
    assert.deepEqual(frame(bytes), expected);
  });

  it("passes whole messages as views of the chunk, without copying", () => {
    const framer = new MessageFramer(1 << 20);
    const views: Buffer[] = [];
    framer.push(fixture, (_t, m) => views.push(m));
    for (const view of views) assert.equal(view.buffer, fixture.buffer);
  });

  it("refuses a length below 4", () => {
    const framer = new MessageFramer(1 << 20);
    const bad = Buffer.from([0x51, 0, 0, 0, 3]);
    assert.throws(
      () => framer.push(bad, () => undefined),
      (e: unknown) => e instanceof ProtocolError && e.code === "08P01" && /invalid message length 3/.test(e.message),
    );
  });

  it("refuses a message over the size limit as soon as its header arrives", () => {
    const framer = new MessageFramer(1024);
    const header = Buffer.from([0x51, 0, 0, 0x10, 0]);
    framer.push(header.subarray(0, 3), () => undefined);
    assert.throws(
      () => framer.push(header.subarray(3), () => undefined),
      (e: unknown) => e instanceof ProtocolError && e.code === "54000" && /'Q' is 4097 bytes/.test(e.message),
    );
  });

  it("names an unprintable type byte in hex", () => {
    const framer = new MessageFramer(1 << 20);
    assert.throws(() => framer.push(Buffer.from([0x01, 0, 0, 0, 0]), () => undefined), /type 0x01/);
  });
});
