// Given/when/then for deciders, after emmett's deciderSpecification: given the events a stream already holds, when a
// command is decided, then exactly these events follow (or the command is refused with this code). The state is
// never looked at: it is whatever the decider's own evolve makes of the given events.
import assert from "node:assert/strict";
import { ApprovalRefused, type Decider, fold, type RefusalCode } from "../decider.ts";

export interface DeciderSpecification<Command, Event> {
  given(events: Event[]): {
    when(command: Command): {
      /** The command yields exactly `events` (`[]`: it changes nothing). */
      then(events: Event[]): void;
      /** The command is refused with `code` (and a message matching `message`). */
      thenThrows(code: RefusalCode, message?: RegExp): void;
    };
  };
}

export function deciderSpecification<State, Command, Event>(
  decider: Decider<State, Command, Event>,
): DeciderSpecification<Command, Event> {
  return {
    given: (history) => ({
      when: (command) => {
        const decide = () => decider.decide(command, fold(decider, history));
        return {
          // biome-ignore lint/suspicious/noThenProperty: given/when/then is the point; awaiting it fails (below)
          then: (expected) => {
            if (!Array.isArray(expected)) throw new TypeError("a specification is not a promise: do not await it");
            assert.deepStrictEqual(decide(), expected);
          },
          thenThrows: (code, message) => {
            let events: Event[];
            try {
              events = decide();
            } catch (error) {
              if (!(error instanceof ApprovalRefused)) throw error;
              assert.equal(error.code, code, `refused as ${error.code} (${error.message}), not as ${code}`);
              if (message !== undefined) assert.match(error.message, message);
              return;
            }
            assert.fail(`expected a refusal (${code}), got ${JSON.stringify(events, bigints)}`);
          },
        };
      },
    }),
  };
}

const bigints = (_key: string, value: unknown) => (typeof value === "bigint" ? `${value}n` : value);
