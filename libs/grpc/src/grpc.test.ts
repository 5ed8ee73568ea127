import assert from "node:assert/strict";
import { createServer } from "node:net";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Effect, PolicyService } from "@agentgate/events";
import { Metadata, Server } from "@grpc/grpc-js";
import { createClient, isLoopback } from "./client.ts";
import { Code, GrpcError } from "./errors.ts";
import { addService, bindServer } from "./server.ts";
import type { CallContext, ServiceImpl } from "./types.ts";

// The policy service's descriptor serves as the test service: it has unary and server-streaming RPCs.
type Impl = ServiceImpl<typeof PolicyService>;

interface Harness {
  address: string;
  logged: { object: object; message: string }[];
  shutdown: AbortController;
  close(): Promise<void>;
}

async function serve(impl: Partial<Impl>, address = "127.0.0.1:0"): Promise<Harness> {
  const server = new Server();
  const logged: Harness["logged"] = [];
  const shutdown = new AbortController();
  const full: Impl = {
    decide: async () => ({}),
    describeSession: async () => ({}),
    async *watchRevision() {},
    ...impl,
  };
  addService(server, PolicyService, full, {
    signal: shutdown.signal,
    logger: { error: (object, message) => logged.push({ object, message }) },
  });
  const port = await bindServer(server, address);
  return {
    address: `127.0.0.1:${port}`,
    logged,
    shutdown,
    close: () => {
      shutdown.abort();
      return new Promise((resolve) => server.tryShutdown(() => resolve()));
    },
  };
}

function untilAborted(context: CallContext): Promise<unknown> {
  return new Promise((resolve) => context.signal.addEventListener("abort", () => resolve(context.signal.reason)));
}

async function rejectsWith(promise: Promise<unknown>, code: Code, message?: RegExp): Promise<GrpcError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof GrpcError, `expected a GrpcError, got ${error}`);
    assert.equal(error.codeName, Code[code]);
    if (message) assert.match(error.message, message);
    return error;
  }
  assert.fail(`expected ${Code[code]}, but the call succeeded`);
}

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

describe("gRPC adapter for protobuf-es services", { timeout: 30_000 }, () => {
  let harness: Harness;
  let client: ReturnType<typeof createClient<typeof PolicyService>>;
  const serverSignals: Promise<unknown>[] = [];
  const streamClosed: (() => void)[] = [];

  before(async () => {
    harness = await serve({
      async decide(request, context) {
        if (request.target === "forbidden") throw new GrpcError(Code.PERMISSION_DENIED, "not for you");
        if (request.target === "bug") throw new Error("connection string postgres://secret@db");
        if (request.target === "slow") {
          const reason = untilAborted(context);
          serverSignals.push(reason);
          await reason;
          return {};
        }
        return {
          effect: Effect.REQUIRE_APPROVAL,
          rule: `rule-for-${request.principal?.subject}`,
          approverGroups: ["dba"],
          approvalsRequired: 2,
          revision: String(request.statements.length),
        };
      },
      async *watchRevision(_request, context) {
        const subject = context.metadata.get("x-mode")[0];
        if (subject === "fail") {
          yield { revision: "r1" };
          throw new GrpcError(Code.FAILED_PRECONDITION, "rules are broken");
        }
        if (subject === "forever") {
          try {
            yield { revision: "r1" };
            await untilAborted(context);
          } finally {
            streamClosed.shift()?.();
          }
          return;
        }
        for (const revision of ["r1", "r2", "r3"]) yield { revision };
      },
    });
    client = createClient(PolicyService, harness.address);
  });

  after(async () => {
    client.close();
    await harness.close();
  });

  it("round-trips a unary call, typed by the proto", async () => {
    const response = await client.decide({
      principal: { subject: "agent-1", groups: ["analysts"] },
      target: "app",
      statements: [{ class: "read", classes: ["read"] }, { class: "write" }],
    });
    assert.equal(response.effect, Effect.REQUIRE_APPROVAL);
    assert.equal(response.rule, "rule-for-agent-1");
    assert.deepEqual(response.approverGroups, ["dba"]);
    assert.equal(response.approvalsRequired, 2);
    assert.equal(response.revision, "2");
  });

  it("passes a GrpcError's status and message to the client", async () => {
    await rejectsWith(client.decide({ target: "forbidden" }), Code.PERMISSION_DENIED, /^not for you$/);
  });

  it("answers any other error with a generic INTERNAL and logs it, leaking nothing", async () => {
    const error = await rejectsWith(client.decide({ target: "bug" }), Code.INTERNAL, /^internal error$/);
    assert.doesNotMatch(error.message, /secret/);
    const entry = harness.logged.find((line) => line.message === "gRPC handler failed");
    assert.ok(entry, "the error was logged");
    assert.match(String((entry.object as { err: Error }).err.message), /secret/);
    assert.equal((entry.object as { rpc: string }).rpc, "/agentgate.v1.PolicyService/Decide");
  });

  it("streams server messages until the server ends the stream", async () => {
    const revisions: string[] = [];
    for await (const message of client.watchRevision({})) revisions.push(message.revision);
    assert.deepEqual(revisions, ["r1", "r2", "r3"]);
  });

  it("delivers messages sent before a stream fails, then its status", async () => {
    const revisions: string[] = [];
    const metadata = new Metadata();
    metadata.set("x-mode", "fail");
    await rejectsWith(
      (async () => {
        for await (const message of client.watchRevision({}, { metadata })) revisions.push(message.revision);
      })(),
      Code.FAILED_PRECONDITION,
      /rules are broken/,
    );
    assert.deepEqual(revisions, ["r1"]);
  });

  it("fails a call past its deadline with DEADLINE_EXCEEDED and aborts the handler's signal", async () => {
    const started = Date.now();
    await rejectsWith(client.decide({ target: "slow" }, { deadlineMs: 200 }), Code.DEADLINE_EXCEEDED);
    assert.ok(Date.now() - started < 2000);
    const reason = await serverSignals.at(-1);
    assert.ok(reason instanceof GrpcError);
    assert.ok([Code.DEADLINE_EXCEEDED, Code.CANCELLED].includes(reason.code), `server saw ${reason.codeName}`);
  });

  it("cancels a unary call when its signal aborts, and the server's handler sees it", async () => {
    const controller = new AbortController();
    const call = client.decide({ target: "slow" }, { signal: controller.signal });
    await sleep(100);
    controller.abort();
    await rejectsWith(call, Code.CANCELLED);
    const reason = await serverSignals.at(-1);
    assert.ok(reason instanceof GrpcError && reason.code === Code.CANCELLED);
    await rejectsWith(client.decide({ target: "app" }, { signal: controller.signal }), Code.CANCELLED);
  });

  it("ends the server's generator when the client aborts a stream or stops reading", async () => {
    const metadata = new Metadata();
    metadata.set("x-mode", "forever");

    const closedByAbort = new Promise<void>((resolve) => streamClosed.push(resolve));
    const controller = new AbortController();
    const seen: string[] = [];
    await rejectsWith(
      (async () => {
        for await (const message of client.watchRevision({}, { metadata, signal: controller.signal })) {
          seen.push(message.revision);
          controller.abort();
        }
      })(),
      Code.CANCELLED,
    );
    assert.deepEqual(seen, ["r1"]);
    await closedByAbort;

    const closedByBreak = new Promise<void>((resolve) => streamClosed.push(resolve));
    for await (const message of client.watchRevision({}, { metadata })) {
      assert.equal(message.revision, "r1");
      break;
    }
    await closedByBreak;
  });

  it("ends open streams with UNAVAILABLE when the server's shutdown signal aborts", async () => {
    const other = await serve({
      async *watchRevision(_request, context) {
        yield { revision: "r1" };
        await untilAborted(context);
      },
    });
    const otherClient = createClient(PolicyService, other.address);
    try {
      const seen: string[] = [];
      const reading = (async () => {
        for await (const message of otherClient.watchRevision({})) {
          seen.push(message.revision);
          other.shutdown.abort();
        }
      })();
      await rejectsWith(reading, Code.UNAVAILABLE, /shutting down/);
      assert.deepEqual(seen, ["r1"]);
    } finally {
      otherClient.close();
      await other.close();
    }
  });

  it("fails with UNAVAILABLE when no server is listening, and recovers once one is", async () => {
    const port = await freePort();
    const address = `127.0.0.1:${port}`;
    const lonely = createClient(PolicyService, address, {
      channelOptions: { "grpc.initial_reconnect_backoff_ms": 100, "grpc.max_reconnect_backoff_ms": 200 },
    });
    try {
      await rejectsWith(lonely.decide({ target: "app" }), Code.UNAVAILABLE);
      await rejectsWith(
        (async () => {
          for await (const _ of lonely.watchRevision({})) assert.fail("no message expected");
        })(),
        Code.UNAVAILABLE,
      );
      const late = await serve({ decide: async () => ({ rule: "late" }) }, address);
      try {
        const deadline = Date.now() + 5000;
        for (;;) {
          try {
            assert.equal((await lonely.decide({ target: "app" })).rule, "late");
            break;
          } catch (error) {
            if (!(error instanceof GrpcError) || error.code !== Code.UNAVAILABLE || Date.now() > deadline) throw error;
            await sleep(100);
          }
        }
      } finally {
        await late.close();
      }
    } finally {
      lonely.close();
    }
  });

  it("uses a default deadline from the client's options", async () => {
    const hasty = createClient(PolicyService, harness.address, { deadlineMs: 100 });
    try {
      await rejectsWith(hasty.decide({ target: "slow" }), Code.DEADLINE_EXCEEDED);
    } finally {
      hasty.close();
    }
  });

  it("refuses plaintext to anything but loopback", () => {
    assert.throws(() => createClient(PolicyService, "policy.example.com:7070"), /needs credentials/);
    for (const address of ["127.0.0.1:7070", "localhost:7070", "[::1]:7070", "dns:///localhost:7070", "unix:/tmp/s"]) {
      assert.equal(isLoopback(address), true, address);
    }
    for (const address of ["10.0.0.1:7070", "[::]:7070", "0.0.0.0:7070", "127.example.com:7070"]) {
      assert.equal(isLoopback(address), false, address);
    }
  });
});
