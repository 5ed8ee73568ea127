import { Backend, Frontend } from "@agentgate/wire";

type Pending = { type: number; ours: boolean };

/**
 * Matches upstream responses to the requests that caused them, for the few responses the gateway must recognise:
 * the ParseComplete and BindComplete its own injected messages cause (to swallow them), and the ReadyForQuery that
 * closes each Query or Sync. Only Parse, Bind, Sync, Query and FunctionCall are tracked.
 */
export class ResponseTracker {
  #queue: Pending[] = [];
  /** Our injected Bind was answered: the next ErrorResponse is the refusal our Execute raises. */
  #refusalErrorNext = false;

  /** Records a request sent upstream. */
  sent(type: number, ours = false): void {
    if (type === Frontend.Parse || type === Frontend.Bind || type === Frontend.Sync) {
      this.#queue.push({ type, ours });
    } else if (type === Frontend.Query || type === Frontend.FunctionCall) {
      this.#queue.push({ type: Frontend.Query, ours });
    }
  }

  /** Whether the ErrorResponse arriving now is a refusal the gateway had the server raise (call before `received`). */
  isRefusal(): boolean {
    if (this.#refusalErrorNext) return true;
    const head = this.#queue[0];
    return head !== undefined && head.type === Frontend.Query && head.ours;
  }

  /** Says whether a response goes to the client (true) or was caused by the gateway and is dropped (false). */
  received(type: number): boolean {
    switch (type) {
      case Backend.ParseComplete:
        return !this.#take(Frontend.Parse);
      case Backend.BindComplete: {
        const ours = this.#take(Frontend.Bind);
        if (ours) this.#refusalErrorNext = true;
        return !ours;
      }
      case Backend.ErrorResponse:
        this.#refusalErrorNext = false;
        // In the extended protocol the server skips to the next Sync: those Parses and Binds get no answer.
        if (this.#queue[0]?.type !== Frontend.Query) this.#dropUntilSync();
        return true;
      case Backend.ReadyForQuery:
        this.#refusalErrorNext = false;
        this.#dropThroughSync();
        return true;
      default:
        return true;
    }
  }

  #take(type: number): boolean {
    const i = this.#queue.findIndex((p) => p.type === type);
    if (i < 0) return false;
    return this.#queue.splice(i, 1)[0]!.ours;
  }

  #dropUntilSync(): void {
    while (this.#queue.length > 0) {
      const head = this.#queue[0]!;
      if (head.type === Frontend.Sync || head.type === Frontend.Query) return;
      this.#queue.shift();
    }
  }

  #dropThroughSync(): void {
    this.#dropUntilSync();
    this.#queue.shift();
  }
}
