import { Backend } from "@agentgate/wire";
import type { CompletedStatement } from "./audit.ts";

interface Open {
  id: string;
  extended: boolean;
  refused: boolean;
  started: bigint;
  tags: string[];
  rows: bigint;
  sqlstate: string;
}

/**
 * Follows the server's responses to tell, for each audited statement, how it ended: a simple query ends at its
 * ReadyForQuery (all its command tags), an executed portal at its CommandComplete, PortalSuspended, EmptyQuery or
 * ErrorResponse; portals the server skipped after an error end at the Sync as skipped.
 */
export class OutcomeTracker {
  #open: Open[] = [];

  began(id: string, extended: boolean, refused: boolean): void {
    this.#open.push({ id, extended, refused, started: process.hrtime.bigint(), tags: [], rows: 0n, sqlstate: "" });
  }

  get idle(): boolean {
    return this.#open.length === 0;
  }

  /** Feeds one upstream message; calls `done` for every statement it completes. */
  received(type: number, message: Buffer, done: (id: string, outcome: CompletedStatement) => void): void {
    const head = this.#open[0];
    if (head === undefined) return;
    switch (type) {
      case Backend.CommandComplete: {
        const tag = message.toString("utf8", 5, message.length - 1);
        head.tags.push(tag);
        head.rows += rowsOf(tag);
        if (head.extended) this.#finish(done, head.sqlstate === "" ? "ok" : "error");
        return;
      }
      case Backend.PortalSuspended:
      case Backend.EmptyQueryResponse:
        if (head.extended) this.#finish(done, "ok");
        return;
      case Backend.ErrorResponse:
        head.sqlstate = sqlstateOf(message);
        if (head.extended) this.#finish(done, "error");
        return;
      case Backend.ReadyForQuery:
        while (this.#open.length > 0) {
          const next = this.#open[0]!;
          if (!next.extended) {
            this.#finish(done, next.sqlstate === "" ? "ok" : "error");
            return;
          }
          this.#finish(done, "skipped");
        }
        return;
    }
  }

  #finish(done: (id: string, outcome: CompletedStatement) => void, status: CompletedStatement["status"]): void {
    const s = this.#open.shift()!;
    done(s.id, {
      status: s.refused && status === "error" ? "refused" : status,
      commandTag: s.tags.join("; "),
      rows: s.rows,
      sqlstate: s.sqlstate,
      durationMicros: (process.hrtime.bigint() - s.started) / 1000n,
    });
  }
}

function rowsOf(tag: string): bigint {
  const last = tag.slice(tag.lastIndexOf(" ") + 1);
  return /^\d+$/.test(last) && /^(SELECT|INSERT|UPDATE|DELETE|MERGE|FETCH|MOVE|COPY)\b/.test(tag) ? BigInt(last) : 0n;
}

function sqlstateOf(message: Buffer): string {
  let offset = 5;
  while (offset < message.length && message[offset] !== 0) {
    const end = message.indexOf(0, offset + 1);
    if (end < 0) break;
    if (message[offset] === 0x43) return message.toString("utf8", offset + 1, end);
    offset = end + 1;
  }
  return "";
}
