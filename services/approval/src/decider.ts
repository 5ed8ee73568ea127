// An aggregate as a decider: `initialState()` is the state of a stream with no events, `evolve(state, event)` folds
// one event into the state, and `decide(command, state)` says which events a command causes (none: nothing to do)
// or refuses it. All three are pure; the service loads a stream, folds it from the initial state, decides, and
// appends with the stream's revision as the expectation, so two instances deciding at once cannot both win.
import type { Principal } from "@agentgate/events";

export interface Decider<State, Command, Event> {
  initialState(): State;
  evolve(state: State, event: Event): State;
  decide(command: Command, state: State): Event[];
}

/** The state after `events`, starting from `state` (default: the decider's initial state). */
export function fold<State, Event>(
  decider: Pick<Decider<State, never, Event>, "initialState" | "evolve">,
  events: Iterable<Event>,
  state: State = decider.initialState(),
): State {
  let folded = state;
  for (const event of events) folded = decider.evolve(folded, event);
  return folded;
}

export type RefusalCode =
  | "not_found"
  | "exists"
  | "not_pending"
  | "self_approval"
  | "not_an_approver"
  | "already_decided"
  | "not_the_requester"
  | "not_in_force"
  | "invalid";

/** A command a decider refuses; `code` says why (the gRPC layer maps it to a status). */
export class ApprovalRefused extends Error {
  override readonly name = "ApprovalRefused";
  constructor(
    readonly code: RefusalCode,
    message: string,
  ) {
    super(message);
  }
}

/** The same principal: same issuer and subject. */
export function principalKey(p: Principal): string {
  return `${p.issuer}\u0000${p.subject}`;
}

/** Whether `p` belongs to one of `groups`. */
export function memberOf(p: Principal, groups: readonly string[]): boolean {
  const own = new Set(p.groups);
  return groups.some((g) => own.has(g));
}
