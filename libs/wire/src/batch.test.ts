import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { WriteBatch } from "./batch.ts";

describe("WriteBatch", () => {
  it("merges adjacent views of one chunk into one buffer", () => {
    const chunk = Buffer.from("aaabbbccc");
    const batch = new WriteBatch();
    batch.add(chunk.subarray(0, 3));
    batch.add(chunk.subarray(3, 6));
    batch.add(chunk.subarray(6, 9));
    const parts = batch.take();
    assert.equal(parts.length, 1);
    assert.equal(parts[0]!.toString(), "aaabbbccc");
    assert.ok(batch.empty);
  });

  it("keeps order and separates non-adjacent pieces", () => {
    const chunk = Buffer.from("aaabbbccc");
    const other = Buffer.from("XYZ");
    const batch = new WriteBatch();
    batch.add(chunk.subarray(0, 3));
    batch.add(other);
    batch.add(chunk.subarray(6, 9));
    batch.add(chunk.subarray(3, 6)); // adjacent in memory only if order allowed it: it does not
    assert.deepEqual(
      batch.take().map((b) => b.toString()),
      ["aaa", "XYZ", "ccc", "bbb"],
    );
  });
});
