import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { ConfigError } from "./errors.ts";
import { interpolate, loadConfig, parseConfig } from "./load.ts";
import { resolveTargets } from "./target.ts";

const dir = mkdtempSync(join(tmpdir(), "agentgate-config-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function file(text: string): string {
  const path = join(dir, `${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(path, text);
  return path;
}

function rejects(fn: () => unknown, key: string, reason: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${e}`);
    assert.equal(e.key, key);
    assert.match(e.reason, reason);
    return true;
  });
}

const SECRET = "s3cr3t-Pa55word";

describe("configuration", () => {
  it("loads the documented example, pulling the secret from the environment", () => {
    const config = loadConfig(
      file(`
proxy:
  listen: 127.0.0.1:6432
identity:
  issuer: https://idp.example.com/
  audience: agentgate
  groupsClaim: realm_access.roles
targets:
  app:
    url: postgres://svc_app:\${APP_DB_PASSWORD}@127.0.0.1:5432/app
    tls: { mode: verify-full }
`),
      { APP_DB_PASSWORD: SECRET },
    );
    assert.equal(config.proxy.listen, "127.0.0.1:6432");
    assert.equal(config.proxy.allowPlaintextLoopback, false);
    assert.equal(config.identity?.groupsClaim, "realm_access.roles");
    const app = resolveTargets(config).get("app")!;
    assert.deepEqual(
      { ...app },
      {
        name: "app",
        host: "127.0.0.1",
        port: 5432,
        database: "app",
        user: "svc_app",
        tls: { mode: "verify-full" },
      },
    );
    assert.equal(app.password, SECRET);
    assert.ok(!JSON.stringify(app).includes(SECRET), "the password is not serialised");
  });

  it("names a missing key", () => {
    rejects(() => parseConfig({ proxy: {} }), "targets", /expected record|Invalid input|received undefined/i);
    rejects(() => parseConfig({ targets: { app: {} } }), "targets.app.url", /expected string|Invalid input/i);
    rejects(
      () => parseConfig({ identity: { audience: "a" }, targets: { app: { url: "postgres://h/db" } } }),
      "identity.issuer",
      /Invalid|expected/i,
    );
  });

  it("names a key with the wrong type or value", () => {
    const targets = { app: { url: "postgres://h/db" } };
    rejects(() => parseConfig({ proxy: { listen: 6432 }, targets }), "proxy.listen", /expected string/i);
    rejects(() => parseConfig({ proxy: { listen: "nowhere" }, targets }), "proxy.listen", /host:port/);
    rejects(
      () => parseConfig({ proxy: { idleSessionTimeoutMs: "soon" }, targets }),
      "proxy.idleSessionTimeoutMs",
      /number/,
    );
    rejects(() => parseConfig({ proxy: { colour: "red" }, targets }), "proxy", /unrecognized key.*colour/i);
    rejects(() => parseConfig({ targets: { app: { url: "mysql://h/db" } } }), "targets.app.url", /postgres:\/\//);
    rejects(() => parseConfig({ targets: {} }), "targets", /at least one target/);
    rejects(
      () => parseConfig({ targets: { app: { url: "postgres://h/db", tls: { mode: "sometimes" } } } }),
      "targets.app.tls.mode",
      /Invalid option|expected one of/i,
    );
  });

  it("names the key whose ${VAR} is unset, and never echoes values", () => {
    const path = file(`targets:\n  app:\n    url: postgres://svc:\${MISSING_PASSWORD}@h/db\n`);
    rejects(() => loadConfig(path, {}), "targets.app.url", /environment variable MISSING_PASSWORD is not set/);
    // A wrong value next to a secret: the error names the key, not the value.
    try {
      loadConfig(file(`targets:\n  app:\n    url: "${SECRET}"\n`), {});
      assert.fail("expected an error");
    } catch (e) {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.key, "targets.app.url");
      assert.ok(!e.message.includes(SECRET));
    }
  });

  it("reports YAML syntax errors by position only", () => {
    try {
      loadConfig(file(`targets:\n  app: [url: "${SECRET}"\n`), {});
      assert.fail("expected an error");
    } catch (e) {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /not valid YAML at line \d+, column \d+/);
      assert.ok(!e.message.includes(SECRET));
    }
  });

  it("interpolates only ${NAME}, keeps $${ literal, walks arrays", () => {
    assert.deepEqual(interpolate({ a: ["x${A}y", "$${A}"], b: 3 }, { A: "1" }), { a: ["x1y", "${A}"], b: 3 });
    rejects(() => interpolate({ a: "${1A}" }, {}), "a", /invalid environment reference/);
  });
});
