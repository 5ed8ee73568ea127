import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Effect, PolicyService } from "@agentgate/events";
import { Code, createClient, GrpcError } from "@agentgate/grpc";
import { RulesError } from "@agentgate/policy";
import { credentials, makeGenericClientConstructor, type ServiceDefinition } from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { type Logger, pino } from "pino";
import { createPolicyService, type PolicyServer } from "./service.ts";

const RULES = `
rules:
  - name: analysts-read
    match: { groups: [analysts], classes: [read, copy-out, session, transaction] }
    effect: allow
  - name: writers-write
    match: { groups: [writers], classes: [read, write, session, transaction] }
    effect: allow
  - name: orders-need-approval
    match: { groups: [writers], classes: [write], relations: [orders] }
    effect: require_approval
    approvers: [dba]
    approvals: 2
  - name: no-audit
    match: { relations: ["audit.*"] }
    effect: deny
    reason: the audit schema is off limits
`;

// Analysts may now write to the scratch schema too.
const RULES_EDITED = `${RULES}
  - name: analysts-scratch
    match: { groups: [analysts], classes: [write], relations: ["scratch.*"] }
    effect: allow
`;

const dir = mkdtempSync(join(tmpdir(), "agentgate-policy-"));
after(() => rmSync(dir, { recursive: true, force: true }));

type LogLine = { level: number; msg: string } & Record<string, unknown>;

function capturingLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = pino({ level: "debug" }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
  return { logger, lines };
}

/** Editors save by writing a new file and renaming it over the old one. */
function saveLikeAnEditor(file: string, text: string): void {
  const temporary = `${file}.${process.pid}.swp`;
  writeFileSync(temporary, text);
  renameSync(temporary, file);
}

async function eventually<T>(what: string, check: () => T | undefined | Promise<T | undefined>, ms = 2500): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

const analyst = { subject: "agent-7", groups: ["analysts"] };
const writer = { subject: "agent-9", groups: ["writers"] };
const read = (...reads: string[]) => ({ class: "read", classes: ["read"], reads });
const write = (table: string) => ({ class: "write", classes: ["write"], writes: [table] });

describe("policy service", { timeout: 60_000 }, () => {
  const file = join(dir, "rules.yaml");
  const log = capturingLogger();
  let service: PolicyServer;
  let client: ReturnType<typeof createClient<typeof PolicyService>>;
  let address: string;

  before(async () => {
    writeFileSync(file, RULES);
    service = createPolicyService({ rulesFile: file, listen: "127.0.0.1:0", logger: log.logger });
    const { port } = await service.listen();
    address = `127.0.0.1:${port}`;
    client = createClient(PolicyService, address, {
      deadlineMs: 5000,
      channelOptions: { "grpc.initial_reconnect_backoff_ms": 100, "grpc.max_reconnect_backoff_ms": 500 },
    });
  });

  after(async () => {
    client.close();
    await service.close();
  });

  const decide = (principal: typeof analyst, ...statements: ReturnType<typeof read | typeof write>[]) =>
    client.decide({ principal, target: "app", sessionId: "s-1", statements });

  it("decides statements by the rules, under the file's revision", async () => {
    const allowed = await decide(analyst, read("orders"));
    assert.equal(allowed.effect, Effect.ALLOW);
    assert.equal(allowed.rule, "analysts-read");
    assert.equal(allowed.revision, service.revision);
    assert.match(service.revision, /^[0-9a-f]{12}$/);

    const refused = await decide(analyst, read("orders"), write("orders"));
    assert.equal(refused.effect, Effect.DENY);
    assert.equal(refused.rule, "");
    assert.equal(refused.reason, "no rule allows write on app");

    const held = await decide(writer, write("public.orders"));
    assert.equal(held.effect, Effect.REQUIRE_APPROVAL);
    assert.equal(held.rule, "orders-need-approval");
    assert.deepEqual(held.approverGroups, ["dba"]);
    assert.equal(held.approvalsRequired, 2);

    const audit = await decide(writer, read("audit.events"));
    assert.equal(audit.effect, Effect.DENY);
    assert.equal(audit.reason, "the audit schema is off limits");

    const cte = await client.decide({
      principal: analyst,
      target: "app",
      statements: [{ class: "write", classes: ["read", "write"], reads: ["orders"], writes: ["orders"] }],
    });
    assert.equal(cte.effect, Effect.DENY);

    const decided = log.lines.find((line) => line.msg === "decided" && line.rule === "analysts-read");
    assert.equal(decided?.sessionId, "s-1");
    assert.equal(decided?.subject, "agent-7");
  });

  it("says whether a session can only read", async () => {
    const reader = await client.describeSession({ principal: analyst, target: "app" });
    assert.equal(reader.readOnly, true);
    assert.equal(reader.revision, service.revision);
    assert.equal((await client.describeSession({ principal: writer, target: "app" })).readOnly, false);
  });

  it("refuses a request without a principal or a target", async () => {
    for (const call of [client.decide({ target: "app" }), client.describeSession({ principal: analyst })]) {
      await assert.rejects(
        call,
        (error: unknown) => error instanceof GrpcError && error.code === Code.INVALID_ARGUMENT,
      );
    }
  });

  it("answers the standard health check with SERVING", async () => {
    const Health = makeGenericClientConstructor(healthService as unknown as ServiceDefinition, "Health");
    const health = new Health(address, credentials.createInsecure()) as unknown as {
      check(request: { service: string }, callback: (error: Error | null, response?: { status: string }) => void): void;
      close(): void;
    };
    const check = (name: string) =>
      new Promise<string>((resolve, reject) =>
        health.check({ service: name }, (error, response) => (error ? reject(error) : resolve(response!.status))),
      );
    try {
      assert.equal(await check(""), "SERVING");
      assert.equal(await check("agentgate.v1.PolicyService"), "SERVING");
      await assert.rejects(check("nope"), (error: unknown) => (error as { code?: number }).code === Code.NOT_FOUND);
    } finally {
      health.close();
    }
  });

  it("activates an edited file without a restart and pushes the new revision", async () => {
    const watching = new AbortController();
    const revisions: string[] = [];
    const reading = (async () => {
      for await (const message of client.watchRevision({}, { signal: watching.signal }))
        revisions.push(message.revision);
    })().catch((error: unknown) => {
      if (!(error instanceof GrpcError && error.code === Code.CANCELLED)) throw error;
    });
    const before = service.revision;
    await eventually("the current revision on subscribe", () => revisions.length === 1);
    assert.deepEqual(revisions, [before]);
    assert.equal((await decide(analyst, write("scratch.t"))).effect, Effect.DENY);

    const saved = Date.now();
    saveLikeAnEditor(file, RULES_EDITED);
    await eventually("the new revision pushed", () => revisions.length === 2, 2000);
    assert.ok(Date.now() - saved < 2000);
    assert.notEqual(revisions[1], before);
    assert.equal(revisions[1], service.revision);
    const now = await decide(analyst, write("scratch.t"));
    assert.equal(now.effect, Effect.ALLOW);
    assert.equal(now.rule, "analysts-scratch");
    assert.equal(now.revision, revisions[1]);
    const activated = log.lines.find((line) => line.msg === "policy rules activated");
    assert.equal(activated?.revision, revisions[1]);
    assert.equal(activated?.previous, before);

    // Rewritten in place, back to the first version: the first revision again.
    writeFileSync(file, RULES);
    await eventually("the old revision back", () => revisions.length === 3, 2000);
    assert.equal(revisions[2], before);

    // The same rules formatted differently are the same revision: nothing is pushed.
    saveLikeAnEditor(file, `# reformatted\n${RULES.replace("effect: deny", "effect:   deny  # !")}`);
    assert.deepEqual(await service.reload(), { ok: true, revision: before });
    await sleep(300);
    assert.equal(revisions.length, 3);
    watching.abort();
    await reading;
  });

  for (const [what, text, key, reason] of [
    ["bad YAML", `${RULES}\n  - name: [unclosed\n`, "", /not valid YAML/],
    [
      "an unknown class",
      RULES.replace("classes: [write]", "classes: [wirte]"),
      "rules[2].match.classes[0]",
      /Invalid option/,
    ],
    [
      "a duplicate name",
      RULES.replace("name: no-audit", "name: analysts-read"),
      "rules[3].name",
      /duplicate rule name/,
    ],
  ] as const) {
    it(`rejects ${what}, reports it, and keeps the revision in force`, async () => {
      saveLikeAnEditor(file, RULES);
      await service.reload();
      const before = service.revision;
      const logged = log.lines.length;
      saveLikeAnEditor(file, text);
      const line = await eventually("the rejection logged", () =>
        log.lines.slice(logged).find((l) => l.msg.startsWith("policy rules rejected")),
      );
      assert.equal(line.level, 50);
      assert.equal(line.source, file);
      assert.equal(line.key, key);
      assert.match(String(line.reason), reason);
      assert.equal(line.revision, before);
      assert.match(
        line.msg,
        new RegExp(`revision ${before} stays in force: ${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: `),
      );
      assert.equal(service.revision, before);
      assert.equal((await decide(analyst, read("orders"))).revision, before);

      const result = await service.reload();
      assert.equal(result.ok, false);
      assert.ok(!result.ok && result.error instanceof RulesError);
      assert.equal(!result.ok && result.error.key, key);

      // Fixed again: the same revision, and the service says the file is fine once more.
      saveLikeAnEditor(file, RULES);
      await eventually("the recovery logged", () =>
        log.lines.slice(logged).find((l) => l.msg === "policy rules valid again, unchanged"),
      );
      assert.equal(service.revision, before);
    });
  }

  it("keeps the revision when the file disappears, and picks it up when it comes back", async () => {
    const before = service.revision;
    rmSync(file);
    const result = await service.reload();
    assert.ok(!result.ok && /cannot read the rules file \(ENOENT\)/.test(result.error.message));
    assert.equal(service.revision, before);
    writeFileSync(file, RULES_EDITED);
    await eventually("the recreated file activated", () => service.revision !== before);
    saveLikeAnEditor(file, RULES);
    await eventually("back to the original", () => service.revision === before);
  });
});

describe("policy service lifecycle", { timeout: 60_000 }, () => {
  const quiet = pino({ level: "silent" });

  it("notices a changed file by polling when no watch event names it (a ConfigMap's symlink swap)", async () => {
    const root = mkdtempSync(join(dir, "configmap-"));
    const version = (name: string, text: string) => {
      mkdirSync(join(root, name));
      writeFileSync(join(root, name, "rules.yaml"), text);
    };
    version("v1", RULES);
    symlinkSync("v1", join(root, "..data"));
    symlinkSync("..data/rules.yaml", join(root, "rules.yaml"));
    const service = createPolicyService({ rulesFile: join(root, "rules.yaml"), listen: "127.0.0.1:0", logger: quiet });
    await service.listen();
    try {
      const before = service.revision;
      version("v2", RULES_EDITED);
      symlinkSync("v2", join(root, "..data_tmp"));
      renameSync(join(root, "..data_tmp"), join(root, "..data"));
      await eventually("the swapped file activated", () => service.revision !== before, 2500);
    } finally {
      await service.close();
    }
  });

  it("serves inline rules, which never change", async () => {
    const service = createPolicyService({
      rules: [{ name: "all-read", match: { classes: ["read"] }, effect: "allow" }],
      listen: "127.0.0.1:0",
      logger: quiet,
    });
    const { port } = await service.listen();
    const client = createClient(PolicyService, `127.0.0.1:${port}`);
    try {
      assert.equal(
        (await client.decide({ principal: analyst, target: "x", statements: [read("t")] })).effect,
        Effect.ALLOW,
      );
      assert.deepEqual(await service.reload(), { ok: true, revision: service.revision });
    } finally {
      client.close();
      await service.close();
    }
  });

  it("refuses to start with invalid rules, naming the rule and key", () => {
    assert.throws(
      () => createPolicyService({ rules: [{ name: "x", effect: "maybe" }], listen: "127.0.0.1:0", logger: quiet }),
      (error: unknown) => error instanceof RulesError && error.key === "rules[0].effect",
    );
    const broken = join(dir, "broken.yaml");
    writeFileSync(broken, "rules:\n  - name: x\n    effect: allow\n    approvers: [dba]\n");
    assert.throws(
      () => createPolicyService({ rulesFile: broken, listen: "127.0.0.1:0", logger: quiet }),
      (error: unknown) =>
        error instanceof RulesError && error.message.startsWith(`${broken}: rules[0] "x": approvers: only applies`),
    );
    assert.throws(
      () => createPolicyService({ rulesFile: join(dir, "missing.yaml"), listen: "127.0.0.1:0", logger: quiet }),
      /cannot read the rules file \(ENOENT\)/,
    );
  });

  it("ends revision streams with UNAVAILABLE on close, and a restart on the same port serves the same client", async () => {
    const file = join(dir, "restart.yaml");
    writeFileSync(file, RULES);
    const first = createPolicyService({ rulesFile: file, listen: "127.0.0.1:0", logger: quiet });
    const { port } = await first.listen();
    const client = createClient(PolicyService, `127.0.0.1:${port}`, {
      deadlineMs: 2000,
      channelOptions: { "grpc.initial_reconnect_backoff_ms": 100, "grpc.max_reconnect_backoff_ms": 300 },
    });
    try {
      const revisions: string[] = [];
      const ended = (async () => {
        for await (const { revision } of client.watchRevision({})) revisions.push(revision);
      })().then(
        () => undefined,
        (error: unknown) => error,
      );
      await eventually("the first revision", () => revisions.length === 1);
      const started = Date.now();
      await first.close();
      assert.ok(Date.now() - started < 2000, "close did not wait for the open stream");
      const error = await ended;
      assert.ok(error instanceof GrpcError && error.code === Code.UNAVAILABLE, `the stream ended with ${error}`);

      const second = createPolicyService({ rulesFile: file, listen: `127.0.0.1:${port}`, logger: quiet });
      assert.equal((await second.listen()).port, port);
      try {
        const answer = await eventually(
          "the restarted service to answer",
          async () => {
            try {
              return await client.decide({ principal: analyst, target: "app", statements: [read("orders")] });
            } catch (error) {
              if (error instanceof GrpcError && error.code === Code.UNAVAILABLE) return undefined;
              throw error;
            }
          },
          5000,
        );
        assert.equal(answer.effect, Effect.ALLOW);
        assert.equal(answer.revision, revisions[0]);
      } finally {
        await second.close();
      }
    } finally {
      client.close();
    }
  });
});
