import { strict as assert } from "node:assert";
import { createServer } from "node:net";
import { describe, it } from "node:test";
import { findBinary } from "./binaries.ts";
import { freePort } from "./ports.ts";
import { serverUser } from "./unprivileged.ts";

describe("freePort", () => {
  it("returns a loopback port that can be bound right away", async () => {
    const port = await freePort();
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", resolve);
    });
    await new Promise((resolve) => server.close(resolve));
  });
});

describe("findBinary", () => {
  it("finds PostgreSQL's tools", () => {
    assert.match(findBinary("initdb", "apt-get install -y postgresql"), /initdb$/);
  });

  it("names the missing binary and how to install it", () => {
    assert.throws(() => findBinary("agentgate-no-such-tool", "apt-get install -y nothing"), {
      code: "binary_not_found",
      message: /^agentgate-no-such-tool not found .*: apt-get install -y nothing$/,
    });
  });
});

describe("serverUser", () => {
  it("is an unprivileged account exactly when we are root", () => {
    const user = serverUser();
    if (process.getuid?.() === 0) {
      assert.ok(user !== undefined && user.uid !== 0, "root needs an unprivileged user (postgres or nobody)");
    } else {
      assert.equal(user, undefined);
    }
  });
});
