import { Backend, describeType, FRONTEND_TYPES, Frontend, ProtocolError, type WriteBatch } from "@agentgate/wire";
import type { Logger } from "pino";
import type { CompletedStatement, ReceivedStatement, SessionAudit } from "../audit.ts";
import { type Backstop, NO_BACKSTOP_FACTS } from "../enforce/backstop.ts";
import { type Judgement, StatementGate, type Verdict } from "../enforce/gate.ts";
import { bindParameters, bindStatement, closeTarget, parseFields, queryText } from "../enforce/messages.ts";
import { refusalExtended, refusalQuery, withoutContext } from "../enforce/refusal.ts";
import { ResponseTracker } from "../enforce/responses.ts";
import type { MaskCatalog } from "../mask/catalog.ts";
import type { SessionMasking } from "../mask/planner.ts";
import { OutcomeTracker } from "../outcomes.ts";

/** What the pipeline needs from the session that owns the sockets. */
export interface PipelineHost {
  /** The session's logger as it is now (it gains fields as the session learns who and where). */
  log(): Logger;
  /** Whether the session still relays (not ending). */
  relaying(): boolean;
  pauseClient(): void;
  resumeClient(): void;
  /** Writes what `toUpstream` holds. */
  flushToUpstream(): void;
  /** A held message turned out malformed, or deciding failed: forward what was whole, end the session. */
  fail(error: unknown): void;
  /** The server says the statement run is over (a ReadyForQuery with nothing else pending): the session is idle. */
  idle(): void;
}

export interface PipelineParts {
  host: PipelineHost;
  toUpstream: WriteBatch;
  toClient: WriteBatch;
  /** Decides statements; undefined without a policy (every statement passes). */
  gate: StatementGate | undefined;
  /** The read-only backstop, with the gate. */
  backstop: Backstop | undefined;
  /** Masks results; undefined without a policy. */
  masking: SessionMasking | undefined;
  maskCatalog: MaskCatalog | undefined;
  /** The audit trail; undefined without a bus. */
  audit: SessionAudit | undefined;
  /** Aborted when the session ends. */
  sessionSignal: AbortSignal;
  /** The session_authorization the client may see: the user name it signed in with. */
  showUser: (message: Buffer) => Buffer;
}

/**
 * The fast-path function call protocol (FunctionCall) names a function by OID and returns its result outside any
 * statement: no SQL for the policy to judge, no RowDescription to mask by. A gateway that enforces anything (policy,
 * audit, masking) refuses it; the SQL equivalent, `SELECT fn(...)`, goes through every check.
 */
const FUNCTION_CALL_REFUSAL: Verdict = {
  allowed: false,
  replacement: refusalQuery(
    "0A000",
    "the fast-path function call protocol is not supported through agentgate",
    "Call the function in a statement instead: SELECT function(arguments).",
  ),
  extended: false,
};

const FATAL_MARK = Buffer.from("SFATAL\0");

/** A statement's verdict and, once recorded, the id of its StatementReceived. */
type Recorded = { verdict: Verdict | undefined; id?: string };

/** A step's verdict, now or later. */
type Step = Verdict | undefined | Promise<Verdict | undefined>;

function then(step: Step, next: (verdict: Verdict | undefined) => Step): Step {
  return step instanceof Promise ? step.then(next) : next(step);
}

/** What the audit records for a FunctionCall: the function's OID (its arguments are not recorded). */
function functionCallText(message: Buffer): string {
  const oid = message.length >= 9 ? message.readUInt32BE(5) : 0;
  return `-- fast-path FunctionCall of function OID ${oid} (refused)`;
}

/**
 * One session's statement path, client to server: each message is decided (policy, through the gate), checked
 * against what masking can hide, recorded (write-ahead, for statements) and forwarded, in that order; a message that
 * waits for any of these holds the ones behind it. And server to client: the answers to the gateway's own messages
 * are dropped, results are masked, outcomes recorded.
 */
export class StatementPipeline {
  readonly #p: PipelineParts;
  readonly #tracker: ResponseTracker | undefined;
  readonly #outcomes: OutcomeTracker | undefined;
  /** Protocol-level statements by name: their SQL and judgement, for the audit record of each Bind. */
  readonly #parsed = new Map<string, { sql: string; judgement: Judgement | undefined; refused: boolean }>();
  /** Aborted by the client's CancelRequest: ends a wait for approval (then replaced for the next statement). */
  #holdCancel = new AbortController();
  #deciding = false;
  #held: [number, Buffer][] = [];
  /** Queries and Syncs sent upstream that have not had their ReadyForQuery yet. */
  #pendingSyncs = 0;
  #transactionStatus = 0x49; // 'I'
  #clientTerminated = false;
  #upstreamSentFatal = false;
  readonly #sendUpstream = (bytes: Buffer): void => this.#p.toUpstream.add(bytes);

  constructor(parts: PipelineParts) {
    this.#p = parts;
    if (parts.audit !== undefined) this.#outcomes = new OutcomeTracker();
    if (parts.audit !== undefined || parts.gate !== undefined) this.#tracker = new ResponseTracker();
  }

  /** A statement is waiting for its decision, record or approval (an approval may take minutes: not idleness). */
  get deciding(): boolean {
    return this.#deciding;
  }

  /** No Query or Sync awaits its ReadyForQuery. */
  get quiet(): boolean {
    return this.#pendingSyncs === 0;
  }

  /** Idle outside any transaction block: a drained session may end. */
  get idle(): boolean {
    return this.#pendingSyncs === 0 && this.#transactionStatus === 0x49;
  }

  get clientTerminated(): boolean {
    return this.#clientTerminated;
  }

  get upstreamSentFatal(): boolean {
    return this.#upstreamSentFatal;
  }

  /** The client's CancelRequest: a statement held for approval is not on the server yet; its request is withdrawn. */
  cancelHeld(): void {
    this.#holdCancel.abort(new Error("the client canceled the statement"));
    this.#holdCancel = new AbortController();
  }

  /** One message from the client. */
  readonly fromClient = (type: number, message: Buffer): void => {
    if (this.#clientTerminated) return; // nothing may follow Terminate
    if (!FRONTEND_TYPES.has(type)) {
      throw new ProtocolError(`invalid frontend message type ${describeType(type)}`);
    }
    // While a decision is on its way, later messages wait behind it, in order.
    if (this.#deciding) this.#held.push([type, message]);
    else this.#route(type, message);
  };

  /**
   * Sends one client message on, after its steps, in this order: the policy's decision (the gate), what masking
   * cannot hide, the write-ahead record (statements), the approvers' decision (require_approval), so a statement
   * masking refuses is never put to approvers and every statement is on record before anyone is asked. Any step may
   * take a round trip; later messages wait behind it, in order. A cached allow of an unaudited message goes at once.
   */
  #route(type: number, message: Buffer): void {
    const { gate, masking, audit } = this.#p;
    let verdict: Step =
      gate !== undefined && StatementGate.decides(type)
        ? gate.check(type, message, AbortSignal.any([this.#p.sessionSignal, this.#holdCancel.signal]))
        : undefined;
    if (type === Frontend.FunctionCall && (gate !== undefined || audit !== undefined)) {
      verdict = FUNCTION_CALL_REFUSAL;
    }
    if (masking !== undefined && (type === Frontend.Query || type === Frontend.Parse)) {
      verdict = then(verdict, (v) => this.#maskCheck(type, message, v));
    }
    const audited =
      audit !== undefined && (type === Frontend.Query || type === Frontend.Bind || type === Frontend.FunctionCall);
    if (!audited && !(verdict instanceof Promise) && !(verdict?.allowed === false && verdict.approval)) {
      this.#forward(type, message, verdict);
      return;
    }
    this.#deciding = true;
    this.#p.host.pauseClient();
    // What is already forwarded goes out now when the decision may take long; the audit's wait alone is short
    // (bounded by its ack timeout), and sending it together with the statement saves a socket write per statement.
    if (verdict instanceof Promise) this.#p.host.flushToUpstream();
    Promise.resolve(verdict)
      .then((decided): Recorded | Promise<Recorded> =>
        audited ? this.#recordReceived(type, message, decided) : { verdict: decided },
      )
      .then(async (recorded) => {
        const approval = recorded.verdict?.allowed === false ? recorded.verdict.approval : undefined;
        const decided = approval === undefined ? recorded.verdict : await approval();
        if (recorded.id !== undefined) {
          const parsed = type === Frontend.Bind ? this.#parsed.get(bindStatement(message)) : undefined;
          const refused = decided?.allowed === false || (parsed?.refused ?? false);
          this.#outcomes!.began(recorded.id, type === Frontend.Bind, refused);
        }
        return decided;
      })
      .then(
        (decided) => {
          if (!this.#p.host.relaying()) return;
          try {
            this.#deciding = false;
            this.#forward(type, message, decided);
            while (!this.#deciding && this.#held.length > 0) {
              const [t, m] = this.#held.shift()!;
              this.#route(t, m);
            }
            this.#p.host.flushToUpstream();
            if (!this.#deciding) this.#p.host.resumeClient();
          } catch (error) {
            this.#p.host.fail(error);
          }
        },
        (error: unknown) => this.#p.host.fail(error),
      );
  }

  /**
   * After the gate allowed a statement: takes the masks that came with the decision, makes sure the catalog is
   * loaded when something is masked, and refuses what masking cannot hide (see SessionMasking.check).
   */
  #maskCheck(type: number, message: Buffer, verdict: Verdict | undefined): Step {
    const masking = this.#p.masking!;
    // An allowed statement, or one that needs approval: approvers are never asked about what masking refuses.
    if (verdict === undefined || (!verdict.allowed && verdict.approval === undefined)) return verdict;
    const judgement = verdict.judgement;
    const decision = judgement?.decision;
    if (decision !== undefined) masking.useRules(decision.revision, decision.masks, decision.maskedPredicates);
    if (!masking.active) return verdict;
    const sql = type === Frontend.Query ? queryText(message) : parseFields(message).text;
    const refuse = (): Verdict => {
      const refusal = masking.check(type, sql);
      if (refusal === undefined) return verdict;
      const extended = type !== Frontend.Query;
      const replacement = extended
        ? refusalExtended(refusal.code, refusal.message, refusal.hint)
        : refusalQuery(refusal.code, refusal.message, refusal.hint);
      return judgement === undefined
        ? { allowed: false, replacement, extended }
        : { allowed: false, replacement, extended, judgement };
    };
    return masking.needsCatalogFor(sql) ? this.#p.maskCatalog!.fresh().then(refuse) : refuse();
  }

  /**
   * Writes StatementReceived and waits for the bus to store it (its id, for the outcome); if it cannot, the
   * statement is refused.
   */
  async #recordReceived(type: number, message: Buffer, verdict: Verdict | undefined): Promise<Recorded> {
    const extended = type === Frontend.Bind;
    const parsed = extended ? this.#parsed.get(bindStatement(message)) : undefined;
    const statement: ReceivedStatement = extended
      ? {
          sql: parsed?.sql ?? "",
          parameters: bindParameters(message),
          protocol: "extended",
          judgement: verdict?.judgement ?? parsed?.judgement,
        }
      : type === Frontend.FunctionCall
        ? { sql: functionCallText(message), parameters: [], protocol: "function-call", judgement: undefined }
        : { sql: queryText(message), parameters: [], protocol: "simple", judgement: verdict?.judgement };
    try {
      return { verdict, id: await this.#p.audit!.received(statement) };
    } catch (error) {
      this.#p.host.log().error({ err: error }, "audit record not stored: statement refused");
      const why = "statement refused: the audit log did not confirm the record in time";
      const hint = "Nothing was run. Retry when the audit bus is back.";
      return {
        verdict: extended
          ? { allowed: false, replacement: refusalExtended("57P03", why, hint), extended: true }
          : { allowed: false, replacement: refusalQuery("57P03", why, hint), extended: false },
      };
    }
  }

  #forward(type: number, message: Buffer, verdict: Verdict | undefined): void {
    if (this.#clientTerminated) return;
    const { audit, backstop, masking, toUpstream } = this.#p;
    if (audit !== undefined) {
      if (type === Frontend.Parse) {
        const { name, text } = parseFields(message);
        this.#parsed.set(name, { sql: text, judgement: verdict?.judgement, refused: verdict?.allowed === false });
      } else if (type === Frontend.Close) {
        const { kind, name } = closeTarget(message);
        if (kind === "S") this.#parsed.delete(name);
      }
    }
    if (type === Frontend.Query || type === Frontend.Sync || type === Frontend.FunctionCall) this.#pendingSyncs++;
    else if (type === Frontend.Terminate) this.#clientTerminated = true;
    let sent = message;
    if (backstop !== undefined) {
      const facts = verdict === undefined || verdict.allowed ? verdict?.judgement?.backstop : NO_BACKSTOP_FACTS;
      sent = backstop.forward(type, message, facts, this.#sendUpstream);
    }
    if (verdict === undefined || verdict.allowed) {
      this.#tracker?.sent(type);
      const instead = masking?.sent(type, sent);
      if (instead === undefined) toUpstream.add(sent);
      else for (const m of instead) toUpstream.add(m);
      return;
    }
    masking?.sent(type, sent);
    if (verdict.extended) {
      this.#tracker!.sent(Frontend.Parse, true);
      this.#tracker!.sent(Frontend.Bind, true);
    } else {
      this.#tracker!.sent(type, true);
    }
    toUpstream.add(verdict.replacement);
  }

  /** One message from the server. */
  readonly fromUpstream = (type: number, message: Buffer): void => {
    const { backstop, masking, toClient } = this.#p;
    if (backstop?.received(type, message)) return; // the answer to the backstop's own switch
    if (type === Backend.ErrorResponse && this.#tracker?.isRefusal()) {
      this.#tracker.received(type);
      masking?.received(type, message); // the gateway's own words: followed, not redacted
      this.#outcomes?.received(type, message, this.#onCompleted);
      toClient.add(withoutContext(message));
      return;
    }
    if (this.#tracker !== undefined && !this.#tracker.received(type)) return; // caused by the gateway's own message
    // Masking first: a statement's masked-cell counts are complete when its outcome is recorded.
    const sent = masking === undefined ? message : masking.received(type, message);
    this.#outcomes?.received(type, message, this.#onCompleted);
    if (sent === undefined) return; // the answer to the masking's own Describe
    if (type === Backend.ReadyForQuery) {
      if (this.#pendingSyncs > 0) this.#pendingSyncs--;
      if (this.#pendingSyncs === 0) this.#p.host.idle();
      this.#transactionStatus = sent[5]!;
    } else if (type === Backend.ErrorResponse && sent.indexOf(FATAL_MARK, 5) === 5) {
      this.#upstreamSentFatal = true;
    } else if (type === Backend.ParameterStatus) {
      toClient.add(this.#p.showUser(sent));
      return;
    }
    toClient.add(sent);
  };

  #onCompleted = (statementId: string, outcome: CompletedStatement): void => {
    this.#p.audit?.completed(statementId, { ...outcome, maskedCells: this.#p.masking?.takeCounts() ?? {} });
  };
}
