// Runs a decider against one stream of the event store: load the stream, fold it from the initial state, decide,
// append what was decided with the revision that was read as the expectation. When another instance appended in
// between, the append fails and the command is decided again on the newer stream.
import {
  type EventStore,
  type EventToAppend,
  type RecordedEvent,
  WrongExpectedRevisionError,
} from "@agentgate/eventstore";
import { type Decider, fold } from "./decider.ts";

/** A stream as read: its folded state, last revision ("no_stream": no events) and last global position. */
export interface Loaded<State> {
  state: State;
  revision: bigint | "no_stream";
  position: bigint;
}

export interface CommandHandler<State, Command, Event> {
  /** The stream as stored (authoritative, unlike a projection, which may lag another instance). */
  load(stream: string): Promise<Loaded<State>>;
  /** Decides `command`; `encode` turns the events into what the store appends, given the state before them. */
  handle(
    stream: string,
    command: Command,
    encode: (event: Event, before: State) => EventToAppend,
  ): Promise<Loaded<State> & { events: Event[] }>;
}

const ATTEMPTS = 6;

export function createCommandHandler<State, Command, Event>(
  store: EventStore,
  decider: Decider<State, Command, Event>,
  /** The decider event a recorded event stands for; undefined for events the decider does not know. */
  decode: (recorded: RecordedEvent) => Event | undefined,
): CommandHandler<State, Command, Event> {
  const load = async (stream: string): Promise<Loaded<State>> => {
    const loaded: Loaded<State> = { state: decider.initialState(), revision: "no_stream", position: 0n };
    for await (const recorded of store.readStream(stream)) {
      loaded.revision = recorded.revision;
      loaded.position = recorded.position;
      const event = decode(recorded);
      if (event !== undefined) loaded.state = decider.evolve(loaded.state, event);
    }
    return loaded;
  };

  return {
    load,
    async handle(stream, command, encode) {
      for (let attempt = 1; ; attempt++) {
        const current = await load(stream);
        const events = decider.decide(command, current.state);
        if (events.length === 0) return { ...current, events };
        try {
          const result = await store.append(
            stream,
            events.map((event) => encode(event, current.state)),
            { expectedRevision: current.revision },
          );
          const state = fold(decider, events, current.state);
          return { state, revision: result.nextRevision, position: result.position, events };
        } catch (error) {
          if (error instanceof WrongExpectedRevisionError && attempt < ATTEMPTS) continue;
          throw error;
        }
      }
    },
  };
}
