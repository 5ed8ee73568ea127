import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { agentgate } from "./testing.ts";

const dir = mkdtempSync(join(tmpdir(), "agentgate-cli-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function config(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe("agentgate proxy start-up", { timeout: 60_000 }, () => {
  it("refuses a config with an unset ${VAR}, naming the key and not the value", async () => {
    const path = config("unset.yaml", "targets:\n  app:\n    url: postgres://svc:${DB_PASSWORD}@127.0.0.1:1/app\n");
    const r = await agentgate(["proxy", "--config", path]);
    assert.equal(r.code, 78);
    assert.match(r.stderr, /invalid configuration: targets\.app\.url: environment variable DB_PASSWORD is not set/);
  });

  it("refuses a wrong type and a missing key, naming each", async () => {
    const wrongType = await agentgate([
      "proxy",
      "--config",
      config("type.yaml", "proxy:\n  listen: 6432\ntargets: {}\n"),
    ]);
    assert.equal(wrongType.code, 78);
    assert.match(wrongType.stderr, /proxy\.listen: .*expected string/i);
    const missing = await agentgate(["proxy", "--config", config("missing.yaml", "proxy:\n  listen: 127.0.0.1:0\n")]);
    assert.equal(missing.code, 78);
    assert.match(missing.stderr, /invalid configuration: targets: /);
  });

  it("refuses to start, in one line, when the audit bus cannot be reached (fail closed)", async () => {
    const path = config(
      "nobus.yaml",
      'proxy:\n  listen: 127.0.0.1:0\n  audit: { nats: "nats://127.0.0.1:1" }\ntargets:\n  app: { url: "postgres://u:p@127.0.0.1:1/db" }\n',
    );
    const r = await agentgate(["proxy", "--config", path]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^agentgate proxy: cannot reach the audit bus \(proxy\.audit\.nats\): /m);
    assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
  });

  it("says how to pass a config when there is none", async () => {
    const r = await agentgate(["proxy"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /pass --config FILE or set AGENTGATE_CONFIG/);
  });

  it("rejects an unknown command with usage", async () => {
    const r = await agentgate(["frobnicate"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown command "frobnicate"/);
    assert.match(r.stderr, /usage: agentgate/);
  });
});

describe("agentgate approval and slackbot start-up", { timeout: 60_000 }, () => {
  it("name the key that is wrong, and never echo a secret", async () => {
    const bot = await agentgate([
      "slackbot",
      "run",
      "--config",
      config(
        "bot.yaml",
        [
          "identity: { issuer: 'http://127.0.0.1:1', audience: agentgate }",
          "slackbot:",
          "  approval: 127.0.0.1:7071",
          "  signingSecret: s3cr3t-signing-secret-value",
          "  botToken: not-a-bot-token",
          "  channel: C1",
          "  users: {}",
          "  oidc: { clientId: bot, clientSecret: x }",
          "",
        ].join("\n"),
      ),
    ]);
    assert.equal(bot.code, 78);
    assert.match(bot.stderr, /invalid configuration: slackbot\.botToken: expected a bot token/);
    assert.ok(!bot.stderr.includes("s3cr3t") && !bot.stderr.includes("not-a-bot-token"));
    const approval = await agentgate([
      "approval",
      "run",
      "--config",
      config("approval.yaml", "approval:\n  listen: nowhere\n  store: postgres://x@127.0.0.1:1/x\n"),
    ]);
    assert.equal(approval.code, 78);
    assert.match(approval.stderr, /approval\.listen: expected host:port/);
  });
});
