import { strict as assert } from "node:assert";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import { type ChainedFields, chainHash, extendChain, GENESIS_HASH, recordHeader } from "./chain.ts";

const fields: ChainedFields = {
  position: 1n,
  stream: "s-1",
  revision: 0n,
  eventId: "00112233-4455-6677-8899-AABBCCDDEEFF",
  type: "t",
  occurredAt: new Date(1000),
  recordedAt: new Date(2000),
  data: new Uint8Array([0xde, 0xad]),
};

// The documented layout, written out by hand: what an offline verifier in any language must reproduce.
const RECORD_HEX = [
  "01", // format version
  "0000000000000001", // position
  "00000003",
  "732d31", // stream "s-1"
  "0000000000000000", // revision
  "00112233445566778899aabbccddeeff", // event id
  "00000001",
  "74", // type "t"
  "00000000000003e8", // occurredAt 1000 ms
  "00000000000007d0", // recordedAt 2000 ms
  "00000002",
  "dead", // data
].join("");

describe("the hash chain's canonical encoding", () => {
  it("lays an event out exactly as documented", () => {
    const record = Buffer.concat([recordHeader(fields), fields.data]);
    assert.equal(record.toString("hex"), RECORD_HEX);
  });

  it("hashes prevHash's 32 bytes followed by the record", () => {
    const expected = createHash("sha256").update(Buffer.alloc(32)).update(Buffer.from(RECORD_HEX, "hex")).digest("hex");
    assert.equal(chainHash(GENESIS_HASH, fields), expected);
    assert.equal(expected, "b399f77f0c92c4e5904e45bb056a8723b2c532086700c3b81c7a37b33ba37309");
  });

  it("changes the hash when any covered field or prevHash changes", () => {
    const base = chainHash(GENESIS_HASH, fields);
    const variants: Partial<ChainedFields>[] = [
      { position: 2n },
      { stream: "s-2" },
      { revision: 1n },
      { eventId: "00112233-4455-6677-8899-aabbccddeef0" },
      { type: "u" },
      { occurredAt: new Date(1001) },
      { recordedAt: new Date(2001) },
      { data: new Uint8Array([0xde, 0xae]) },
      { data: new Uint8Array([0xde, 0xad, 0x00]) },
      // Length prefixes keep field boundaries: moving a byte from stream to type changes the hash.
      { stream: "s-", type: "1t" },
    ];
    for (const variant of variants) assert.notEqual(chainHash(GENESIS_HASH, { ...fields, ...variant }), base);
    assert.notEqual(chainHash("f".repeat(64), fields), base);
  });

  it("refuses what it cannot encode canonically", () => {
    assert.throws(() => chainHash("ABC", fields), TypeError);
    assert.throws(() => chainHash(GENESIS_HASH, { ...fields, eventId: "not-a-uuid" }), TypeError);
    assert.throws(() => chainHash(GENESIS_HASH, { ...fields, occurredAt: new Date(Number.NaN) }), TypeError);
  });

  it("extends a chain with consecutive positions and a recordedAt that never goes back", () => {
    const { position, recordedAt, ...event } = fields;
    const head = { position: 7n, hash: "a".repeat(64), recordedAt: new Date(5000) };
    const [first, second] = extendChain(head, [event, { ...event, revision: 1n }], new Date(4000.7));
    assert.deepEqual([first?.position, second?.position], [8n, 9n]);
    assert.equal(first?.prevHash, head.hash);
    assert.equal(second?.prevHash, first?.hash);
    assert.equal(first?.recordedAt.getTime(), 5000);
    const [later] = extendChain(head, [event], new Date(6000.7));
    assert.equal(later?.recordedAt.getTime(), 6000);
  });
});
