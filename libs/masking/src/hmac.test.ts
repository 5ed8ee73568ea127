import assert from "node:assert/strict";
import { createHash, createHmac, randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { createHasher, sha256 } from "./hmac.ts";

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");
const reference = (key: Uint8Array, data: Uint8Array) => createHmac("sha256", key).update(data).digest("hex");

describe("HMAC-SHA256", () => {
  // RFC 4231, test cases 1, 2, 4, 6 and 7 (5 truncates the output; 3 is covered by the sweep below).
  for (const [name, key, data, expected] of [
    [
      "case 1",
      Buffer.alloc(20, 0x0b),
      Buffer.from("Hi There"),
      "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
    ],
    [
      "case 2",
      Buffer.from("Jefe"),
      Buffer.from("what do ya want for nothing?"),
      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    ],
    [
      "case 4",
      Buffer.from("0102030405060708090a0b0c0d0e0f10111213141516171819", "hex"),
      Buffer.alloc(50, 0xcd),
      "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
    ],
    [
      "case 6 (a key longer than a block)",
      Buffer.alloc(131, 0xaa),
      Buffer.from("Test Using Larger Than Block-Size Key - Hash Key First"),
      "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    ],
    [
      "case 7 (a long key and a long message)",
      Buffer.alloc(131, 0xaa),
      Buffer.from(
        "This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.",
      ),
      "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
    ],
  ] as const) {
    it(`given RFC 4231 ${name}, when hashed, then the digest is the RFC's`, () => {
      assert.equal(hex(createHasher(key).digest(data)), expected);
    });
  }

  it("given messages of every length from 0 to 300 bytes, when hashed, then each digest is node:crypto's", () => {
    // Around 55/56 and 119/120 bytes the padding moves into a second block; 64 and 128 are whole blocks.
    for (const keyLength of [0, 1, 32, 63, 64, 65, 200]) {
      const key = randomBytes(keyLength);
      const hasher = createHasher(key);
      for (let length = 0; length <= 300; length++) {
        const data = randomBytes(length);
        assert.equal(hex(hasher.digest(data)), reference(key, data), `key ${keyLength} bytes, message ${length}`);
      }
    }
  });

  it("given one hasher used for many values in turn, when a value repeats, then its digest does too", () => {
    const key = Buffer.from("k".repeat(32));
    const hasher = createHasher(key);
    const first = hex(hasher.digest(Buffer.from("4000000000000001")));
    hasher.digest(randomBytes(500));
    hasher.digest(Buffer.alloc(0));
    assert.equal(hex(hasher.digest(Buffer.from("4000000000000001"))), first);
    assert.equal(first, reference(key, Buffer.from("4000000000000001")));
  });

  it("given a 1 MiB message (16,384 blocks), when SHA-256 is taken, then the digest is node:crypto's", () => {
    const data = randomBytes(1 << 20);
    assert.equal(hex(sha256(data)), createHash("sha256").update(data).digest("hex"));
  });
});
