// The specification helper must fail when the decider does something else: else no decider test could fail.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ApprovalRefused, type Decider } from "../decider.ts";
import { deciderSpecification } from "./decider-spec.ts";

type Event = { type: "added"; n: number };
type Command = { type: "add"; n: number };

/** A counter that refuses to go above 10 and ignores adding 0; its state is the sum of the given events. */
const counter: Decider<number, Command, Event> = {
  initialState: () => 0,
  evolve: (sum, event) => sum + event.n,
  decide: (command, sum) => {
    if (command.n < 0) throw new TypeError("negative");
    if (sum + command.n > 10) throw new ApprovalRefused("invalid", `${sum} + ${command.n} is over 10`);
    return command.n === 0 ? [] : [{ type: "added", n: command.n }];
  },
};
const spec = deciderSpecification(counter);
const added = (n: number): Event => ({ type: "added", n });
/** Given events adding `history`, when adding `n`. */
const when = (history: number[], n: number) => spec.given(history.map(added)).when({ type: "add", n });
const { AssertionError } = assert;

describe("deciderSpecification", () => {
  it("passes when the command yields exactly the events, or the refusal, expected", () => {
    when([4], 3).then([added(3)]);
    when([4], 0).then([]);
    when([4, 5], 3).thenThrows("invalid", /9 \+ 3/);
  });

  it("fails when the events differ, or when events come where none were expected", () => {
    assert.throws(() => when([], 3).then([added(4)]), AssertionError);
    assert.throws(() => when([], 3).then([]), AssertionError);
    assert.throws(() => when([], 0).then([added(0)]), AssertionError);
  });

  it("folds the given events: the same command decides differently on another history", () => {
    assert.throws(() => when([9], 3).then([added(3)]), ApprovalRefused);
  });

  it("fails when a refusal was expected and none came, or another code or message came", () => {
    assert.throws(() => when([], 3).thenThrows("invalid"), AssertionError);
    assert.throws(() => when([9], 3).thenThrows("not_found"), AssertionError);
    assert.throws(() => when([9], 3).thenThrows("invalid", /under/), AssertionError);
  });

  it("cannot be awaited by mistake (it would look like a promise that never checks anything)", async () => {
    const specification: unknown = when([], 3);
    await assert.rejects(async () => await specification, TypeError);
  });

  it("lets errors that are no refusal through", () => {
    assert.throws(() => when([], -1).thenThrows("invalid"), TypeError);
  });
});
