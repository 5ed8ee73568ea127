import * as assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isServerOnPort, parseStatCpuTicks } from "./cpu.ts";

describe("parseStatCpuTicks", () => {
  it("adds utime and stime even when the command name holds spaces and parentheses", () => {
    const stat = "4242 (node (agent gate)) S 1 4242 4242 0 -1 4194304 100 0 0 0 250 75 0 0 20 0 11 0 1000";
    assert.equal(parseStatCpuTicks(stat), 325);
  });
});

describe("isServerOnPort", () => {
  it("recognizes the binary by its base name and the port after -p", () => {
    const argv = ["/usr/sbin/nats-server", "-a", "127.0.0.1", "-p", "4222", "-js", "-sd", "/tmp/x/store"];
    assert.equal(isServerOnPort(argv, "nats-server", 4222), true);
    assert.equal(isServerOnPort(argv, "nats-server", 4223), false);
    assert.equal(isServerOnPort(["/usr/bin/setpriv", "--", ...argv], "nats-server", 4222), false);
    assert.equal(isServerOnPort(["/usr/sbin/nats-server", "-a", "4222"], "nats-server", 4222), false);
  });
});
