import * as assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseStatCpuTicks } from "./cpu.ts";

describe("parseStatCpuTicks", () => {
  it("adds utime and stime even when the command name holds spaces and parentheses", () => {
    const stat = "4242 (node (agent gate)) S 1 4242 4242 0 -1 4194304 100 0 0 0 250 75 0 0 20 0 11 0 1000";
    assert.equal(parseStatCpuTicks(stat), 325);
  });
});
