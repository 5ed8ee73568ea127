import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { ConfigError } from "@agentgate/config";
import { loadAuditConfig, parseAuditConfig } from "./config.ts";

const dir = mkdtempSync(join(tmpdir(), "agentgate-audit-config-"));
after(() => rmSync(dir, { recursive: true, force: true }));

describe("the audit section of agentgate.yaml", () => {
  it("reads the section with its defaults, whatever else the file holds", () => {
    const file = join(dir, "agentgate.yaml");
    writeFileSync(
      file,
      [
        "proxy:",
        "  listen: 127.0.0.1:6432",
        "targets:",
        "  app: { url: 'postgres://svc:${UNSET_ELSEWHERE}@127.0.0.1/app' }",
        "audit:",
        "  nats: nats://127.0.0.1:4222",
        "  store: postgres://writer:${STORE_PASSWORD}@127.0.0.1:5432/audit",
        "  publicKey: ./keys/audit.pub",
      ].join("\n"),
    );
    assert.deepEqual(loadAuditConfig(file, { STORE_PASSWORD: "s3cret" }), {
      nats: "nats://127.0.0.1:4222",
      store: "postgres://writer:s3cret@127.0.0.1:5432/audit",
      schema: "agentgate",
      readSchema: "agentgate_read",
      publicKey: "./keys/audit.pub",
      durable: "audit-ingester",
      replicas: 1,
      livenessIntervalMs: 5000,
    });
  });

  it("names the key and the reason, never the value", () => {
    const problems: [unknown, RegExp][] = [
      [{}, /^audit: the audit section is missing$/],
      [{ audit: { store: "postgres://x@h/db" } }, /^audit\.nats: /],
      [{ audit: { nats: "http://h:4222", store: "postgres://h/db" } }, /^audit\.nats: .*nats:\/\//],
      [
        { audit: { nats: "nats://h", store: "mysql://u:hunter2@h/db" } },
        /^audit\.store: expected a postgres:\/\/ URL$/,
      ],
      [{ audit: { nats: "nats://h", store: "postgres://h/db", readSchema: "Read" } }, /^audit\.readSchema: /],
      [{ audit: { nats: "nats://h", store: "postgres://h/db", extra: 1 } }, /^audit: .*extra/i],
      [
        { audit: { nats: "nats://h", store: "postgres://u:${MISSING}@h/db" } },
        /^audit\.store: environment variable MISSING is not set$/,
      ],
    ];
    for (const [document, message] of problems) {
      assert.throws(
        () => parseAuditConfig(document, {}),
        (error: unknown) =>
          error instanceof ConfigError && message.test(error.message) && !error.message.includes("hunter2"),
        String(message),
      );
    }
  });
});
