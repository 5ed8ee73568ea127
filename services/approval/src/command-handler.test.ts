// The command handler on a real PostgreSQL event store: a decider's events appended with the revision it decided
// on, and decided again when another instance appended first.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { EventStore, EventToAppend, PostgresEventStore } from "@agentgate/eventstore";
import { collect, type StoreDatabase, storeDatabase, testEvent } from "@agentgate/eventstore/testing";
import { type ApprovalCommand, type ApprovalEvent, approvalDecider, type Requested } from "./approval-decider.ts";
import { fromStored, streamOf, toStored } from "./codec.ts";
import { createCommandHandler } from "./command-handler.ts";
import { ApprovalRefused } from "./decider.ts";
import { at, dba1, dba2, requested } from "./testing/fixtures.ts";

let storeDb: StoreDatabase;
let store: PostgresEventStore;

before(async () => {
  storeDb = await storeDatabase();
  store = await storeDb.openStore();
});

after(async () => {
  await store?.close();
  await storeDb?.drop();
});

let streams = 0;
/** A new approval stream holding `events`. */
async function stream(...events: ApprovalEvent[]): Promise<string> {
  const id = `a${++streams}`;
  const cx = { approvalId: id, request: requested(), actor: undefined, workerId: "test" };
  if (events.length > 0)
    await store.append(
      streamOf(id),
      events.map((e) => toStored(e, cx)),
    );
  return streamOf(id);
}

const handlerOn = (on: EventStore) =>
  createCommandHandler(on, approvalDecider, (recorded) => fromStored(recorded)?.event);
const encode = (event: ApprovalEvent): EventToAppend =>
  toStored(event, { approvalId: "a", request: requested(), actor: undefined, workerId: "test" });
const approve = (approver = dba1): ApprovalCommand => ({ type: "approve", approver, via: "cli", at });

/**
 * The real store, except that the first `readers` stream reads, once done, wait for one another: they all decide on
 * the same revision, as two instances deciding at once do.
 */
function decidingTogether(real: EventStore, readers: number): EventStore {
  let waiting = readers;
  let open = () => {};
  const gate = new Promise<void>((resolve) => {
    open = resolve;
  });
  return {
    append: (name, events, options) => real.append(name, events, options),
    async *readStream(name, options) {
      const events = await collect(real.readStream(name, options));
      if (waiting > 0) {
        waiting -= 1;
        if (waiting === 0) open();
        await gate;
      }
      yield* events;
    },
    readAll: (options) => real.readAll(options),
    subscribeAll: (options) => real.subscribeAll(options),
    head: () => real.head(),
    close: () => real.close(),
  };
}

describe("the command handler", { timeout: 60_000 }, () => {
  it("folds the stream from the initial state, decides, and appends with the revision it read", async () => {
    const name = await stream();
    const handler = handlerOn(store);
    assert.deepEqual(await handler.load(name), { state: { status: "none" }, revision: "no_stream", position: 0n });
    const request: Omit<Requested, "type"> = requested();
    const made = await handler.handle(name, { type: "request", request }, encode);
    assert.equal(made.state.status, "pending");
    assert.equal(made.revision, 0n);
    const approved = await handler.handle(name, approve(), encode);
    assert.deepEqual([approved.state.status, approved.revision], ["approved", 1n]);
    const loaded = await handler.load(name);
    assert.deepEqual([loaded.state, loaded.revision, loaded.position], [approved.state, 1n, approved.position]);
  });

  it("appends nothing for a command that changes nothing", async () => {
    const name = await stream(requested(), { type: "granted", approver: dba1, via: "cli", at });
    const nothing = await handlerOn(store).handle(name, { type: "expire", at }, encode);
    assert.deepEqual([nothing.events, nothing.revision], [[], 1n]);
    assert.equal((await collect(store.readStream(name))).length, 2);
  });

  it("two approvers at once both count: the one that lost the append decides again on the newer stream", async () => {
    const name = await stream(requested({ approvalsRequired: 2 }));
    const handler = handlerOn(decidingTogether(store, 2));
    await Promise.all([handler.handle(name, approve(dba1), encode), handler.handle(name, approve(dba2), encode)]);
    const { state } = await handlerOn(store).load(name);
    assert.ok(state.status === "approved", state.status);
    assert.deepEqual(state.decisions.map((d) => d.approver.subject).sort(), ["dba1", "dba2"]);
  });

  it("one approver twice at once counts once: deciding again on the newer stream refuses the second", async () => {
    const name = await stream(requested({ approvalsRequired: 2 }));
    const handler = handlerOn(decidingTogether(store, 2));
    const results = await Promise.allSettled([
      handler.handle(name, approve(dba1), encode),
      handler.handle(name, approve(dba1), encode),
    ]);
    assert.deepEqual(results.map((r) => r.status).sort(), ["fulfilled", "rejected"]);
    const refused = results.find((r) => r.status === "rejected")?.reason;
    assert.ok(refused instanceof ApprovalRefused && refused.code === "already_decided", String(refused));
    assert.equal((await collect(store.readStream(name))).length, 2);
  });

  it("skips events the decider does not know, but counts them in the revision it appends after", async () => {
    const name = await stream(requested());
    await store.append(name, [testEvent(1)]);
    const approved = await handlerOn(store).handle(name, approve(), encode);
    assert.deepEqual([approved.state.status, approved.revision], ["approved", 2n]);
  });
});
