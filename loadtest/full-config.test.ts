import * as assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseConfig } from "@agentgate/config";
import { compilePolicy, masksApplying, parsePolicyYaml } from "@agentgate/policy";
import { parse } from "yaml";
import {
  auditShortfall,
  fullConfigYaml,
  fullPolicyYaml,
  fullPrincipals,
  statementsPerTransaction,
  touchedMask,
  untouchedMask,
} from "./full-config.ts";

const input = {
  proxyPort: 40001,
  policyPort: 40002,
  targetUrl: "postgresql://postgres:secret@127.0.0.1:40003/bench_db",
  issuer: "http://127.0.0.1:40004",
  natsUrl: "nats://127.0.0.1:40005",
  storeUrl: "postgresql://agentgate_writer:w@127.0.0.1:40006/agentgate_audit",
  readStoreUrl: "postgresql://postgres:p@127.0.0.1:40006/agentgate_audit",
  rulesFile: "/tmp/x/policy.yaml",
  signingKey: "/tmp/x/audit.key",
  publicKey: "/tmp/x/audit.pub",
  hashKey: "k".repeat(44),
};

describe("gateway-full configuration", () => {
  it("is one agentgate.yaml the proxy accepts whole, with identity, policy, audit and masking on", () => {
    const config = parseConfig(parse(fullConfigYaml(input)), {});
    assert.equal(config.proxy.listen, "127.0.0.1:40001");
    assert.equal(config.proxy.allowPlaintextLoopback, true);
    assert.equal(config.proxy.tls, undefined);
    assert.deepEqual(config.proxy.policy?.address, "127.0.0.1:40002");
    assert.deepEqual(config.proxy.audit?.nats, input.natsUrl);
    assert.equal(config.proxy.masking?.hashKey, input.hashKey);
    assert.equal(config.identity?.issuer, input.issuer);
    assert.equal(config.targets.bench?.url, input.targetUrl);
    // The sections `agentgate policy` and `agentgate audit run` read from the same file.
    assert.equal(config.policy?.listen, "127.0.0.1:40002");
    assert.equal(config.policy?.rulesFile, input.rulesFile);
    assert.equal(config.audit?.store, input.storeUrl);
    assert.equal(config.audit?.readStore, input.readStoreUrl);
    assert.equal(config.audit?.signingKey, input.signingKey);
  });

  it("has a policy whose masks split the principals: the read table's mask exempts only one", () => {
    const document = parsePolicyYaml(fullPolicyYaml());
    const policy = compilePolicy(document.rules, "test", { masks: document.masks });
    const columns = (principal: { clientId: string; groups: readonly string[] }) =>
      masksApplying(policy, { subject: principal.clientId, groups: principal.groups }).map((mask) => mask.column);
    assert.deepEqual(columns(fullPrincipals.masked), [untouchedMask, touchedMask]);
    assert.deepEqual(columns(fullPrincipals.exempt), [untouchedMask]);
    assert.ok(document.rules.every((rule) => rule.effect === "allow"));
  });

  it("counts the statements pgbench sends per transaction", () => {
    assert.equal(statementsPerTransaction("select-only"), 1);
    assert.equal(statementsPerTransaction("tpcb"), 7);
  });

  it("accepts more audited statements than completed, never fewer", () => {
    assert.equal(auditShortfall({ recorded: 702, expected: 700, lagMs: 10 }), undefined);
    assert.equal(auditShortfall({ recorded: 700, expected: 700, lagMs: 10 }), undefined);
    assert.equal(
      auditShortfall({ recorded: 690, expected: 700, lagMs: 10 }),
      "the audit recorded 690 of 700 statements (10 missing)",
    );
  });
});
