import type { Analysis, TransactionControl } from "@agentgate/sql";
import { Backend, Frontend, parameterStatus } from "@agentgate/wire";
import { serialize } from "pg-protocol";
import { bindPortalAndStatement, closeTarget, executePortal, parseFields, withParseText } from "./messages.ts";

/**
 * The read-only backstop (ARCHITECTURE decision 11): whatever the analysis concludes, a statement the policy decided
 * as a read runs where PostgreSQL itself refuses writes, so a write hidden in a view, operator, cast, aggregate,
 * domain check, policy expression or lying function cannot run unapproved.
 *
 * How: the upstream session starts with `default_transaction_read_only = on`. A statement whose decision allowed more
 * than reading switches the session default off before it runs; the next read switches it on again (lazily: a run of
 * writes, or of reads, costs nothing). Explicit transaction blocks are opened read-write (a plain BEGIN is sent as
 * BEGIN READ WRITE) and every read inside one runs inside a read-only savepoint, `SAVEPOINT agentgate_backstop; SET
 * LOCAL transaction_read_only = on`, released before the next write (a released savepoint gives the block back its
 * read-write state, and keeps everything the read did: cursors, locks). The switches are the gateway's own simple
 * queries, placed between the client's own units (a Query, or extended messages up to their Sync); their responses
 * never reach the client. The session default's real value comes from the server itself (PostgreSQL 14 and later
 * report every change of it), so a function that changes it behind the analysis' back is seen and undone before the
 * next read.
 *
 * What it does not cover, and why, is in the README ("The read-only backstop").
 */

/** What the backstop needs to know about a statement string (a Query, or one Parse). */
export interface BackstopFacts {
  /** write: something beyond reading was allowed (DML, DDL, COPY FROM, CALL, ...); read: reading only. */
  need: "read" | "write" | "none";
  /** The string's transaction-control statements, in order. */
  controls: readonly TransactionControl[];
  /** DECLARE ... WITH HOLD: the cursor's query runs when the block commits. */
  holdCursor: boolean;
  /** RESET ALL or DISCARD ALL: every setting goes back to its start value (default_transaction_read_only on). */
  resetsAll: boolean;
  /** The string is one plain BEGIN / START TRANSACTION (its text, without the semicolon): opened READ WRITE. */
  plainBegin: string | undefined;
}

const UNNAMED = { portal: "", statement: "" } as const;
const NONE: BackstopFacts = { need: "none", controls: [], holdCursor: false, resetsAll: false, plainBegin: undefined };

/** Classes that only read (or only touch the session and its transaction): they run read-only. */
const READ_CLASSES: ReadonlySet<string> = new Set(["read", "transaction", "session", "copy-out"]);

/** Statements that take constants only and run no SQL-level code: they need no mode, and cost no switch. */
const NO_CODE_KINDS: ReadonlySet<string> = new Set([
  "VariableSetStmt",
  "VariableShowStmt",
  "ListenStmt",
  "UnlistenStmt",
  "DiscardStmt",
  "DeallocateStmt",
  "ConstraintsSetStmt",
]);

const READ: BackstopFacts = { ...NONE, need: "read" };
const WRITE: BackstopFacts = { ...NONE, need: "write" };

/** What a decided statement string means to the backstop. */
export function backstopFacts(analysis: Analysis): BackstopFacts {
  if (analysis.statements.length === 0) return NONE;
  const only = analysis.statements.length === 1 ? analysis.statements[0]! : undefined;
  // The common case, one statement that only reads or also writes, without transaction control: shared answers.
  if (
    only !== undefined &&
    only.flags.transaction === undefined &&
    !only.flags.holdCursor &&
    !only.flags.protectedSetting
  ) {
    if (NO_CODE_KINDS.has(only.kind) && only.classes.every((c) => READ_CLASSES.has(c))) return NONE;
    return only.classes.some((c) => !READ_CLASSES.has(c)) ? WRITE : READ;
  }
  let need: BackstopFacts["need"] = "none";
  const controls: TransactionControl[] = [];
  let holdCursor = false;
  let resetsAll = false;
  for (const statement of analysis.statements) {
    const control = statement.flags.transaction;
    if (control !== undefined) controls.push(control);
    else if (statement.classes.some((c) => !READ_CLASSES.has(c))) need = "write";
    else if (need === "none" && !NO_CODE_KINDS.has(statement.kind)) need = "read";
    if (statement.flags.holdCursor) holdCursor = true;
    if (statement.flags.protectedSetting?.split(",").includes("all")) resetsAll = true;
  }
  const control = only === undefined ? undefined : controls[0];
  const plainBegin =
    control?.kind === "begin" && control.readOnly === undefined ? analysis.statements[0]!.text : undefined;
  return { need, controls, holdCursor, resetsAll, plainBegin };
}

/** The gateway's savepoint; a client's transaction statement naming it is refused (see the gate). */
export const BACKSTOP_SAVEPOINT = "agentgate_backstop";
const SAVEPOINT = BACKSTOP_SAVEPOINT;
const DEFAULT_READ_ONLY = serialize.query("SET default_transaction_read_only = on");
const DEFAULT_READ_WRITE = serialize.query("SET default_transaction_read_only = off");
const ENTER_READ_ONLY = serialize.query(`SAVEPOINT ${SAVEPOINT}; SET LOCAL transaction_read_only = on`);
const LEAVE_READ_ONLY = serialize.query(`RELEASE SAVEPOINT ${SAVEPOINT}`);
const READ_ONLY_TOP = serialize.query("SET LOCAL transaction_read_only = on");
const LEAVE_INTO_READ_ONLY_TOP = serialize.query(
  `RELEASE SAVEPOINT ${SAVEPOINT}; SET LOCAL transaction_read_only = on`,
);
const REPORTED = "default_transaction_read_only\0";

/** A unit whose ReadyForQuery is due: the client's, or one of the gateway's switches. */
type Unit = "client" | "default" | "enter" | "leave" | "top";

/** An open transaction block as the backstop follows it. */
interface Block {
  /** Whether the block itself is read-write (opened so by the gateway, or by a write in its opening query). */
  readWrite: boolean;
  /** Whether the gateway's read-only savepoint is open. */
  entered: boolean;
  /** The client's savepoints, innermost last, each with whether ours was open when it was made. */
  savepoints: { name: string; entered: boolean }[];
  holdCursor: boolean;
  /** Whether a statement decided as a write ran in the block. */
  wrote: boolean;
}

/** What a refused statement (or a message the gate does not decide) means to the backstop: nothing to switch for. */
export const NO_BACKSTOP_FACTS = NONE;

/**
 * One session's backstop: decides, for each client message forwarded upstream, which of the gateway's own switches
 * go before it, rewrites a plain BEGIN, and recognises the responses to its own switches so they can be dropped.
 */
export class Backstop {
  /**
   * Principals that may only read: never switched read-write, no block opened READ WRITE; the default is only ever
   * switched back on where something turned it off.
   */
  readonly #readOnlySession: boolean;
  /** default_transaction_read_only upstream, as last reported or set; undefined when unknown. */
  #defaultReadOnly: boolean | undefined = true;
  /** Whether the server reports changes of default_transaction_read_only (PostgreSQL 14+): else asserted per unit. */
  #reported = false;
  #block: Block | undefined;
  /** A unit of the client's (extended messages) has begun and its Sync has not been forwarded yet. */
  #unitOpen = false;
  /** Units sent upstream whose ReadyForQuery is due, oldest first: the client's, or which switch of the gateway's. */
  readonly #units: Unit[] = [];
  /** Facts of protocol-level prepared statements and portals, by name. */
  readonly #statements = new Map<string, BackstopFacts>();
  readonly #portals = new Map<string, BackstopFacts>();

  constructor(options: { readOnlySession: boolean }) {
    this.#readOnlySession = options.readOnlySession;
  }

  /**
   * The server's startup ParameterStatus of default_transaction_read_only: shows the client the mode it may use
   * (off unless the principal may only read), and tells whether the server reports changes.
   */
  startupParameter(message: Buffer): Buffer {
    if (!isDefaultReadOnlyStatus(message)) return message;
    this.#reported = true;
    this.#defaultReadOnly = parameterValue(message) === "on";
    return parameterStatus("default_transaction_read_only", this.#readOnlySession ? "on" : "off");
  }

  /**
   * A client message is about to go upstream (`facts` from its decision, for Query and Parse; NONE when it was
   * refused): hands the gateway's switch to `send` when one is due before it, and returns the message to send (a
   * plain BEGIN as BEGIN READ WRITE, else the message itself).
   */
  forward(type: number, message: Buffer, facts: BackstopFacts | undefined, send: (bytes: Buffer) => void): Buffer {
    switch (type) {
      case Frontend.Query: {
        const f = facts ?? NONE;
        if (!this.#unitOpen) this.#switchFor(f, send);
        const opens = this.#opensReadWrite(f);
        this.#apply(f, opens !== undefined);
        this.#unitOpen = false;
        this.#units.push("client");
        return opens === undefined ? message : serialize.query(opens);
      }
      case Frontend.Parse: {
        const f = facts ?? NONE;
        // The unnamed statement and portal (most drivers' every statement) cost no string decoding.
        this.#statements.set(message[5] === 0 ? "" : parseFields(message).name, f);
        this.#start(f, send);
        const opens = this.#opensReadWrite(f);
        return opens === undefined ? message : withParseText(message, opens);
      }
      case Frontend.Bind: {
        const { portal, statement } = message[5] === 0 && message[6] === 0 ? UNNAMED : bindPortalAndStatement(message);
        const f = this.#statements.get(statement) ?? NONE;
        this.#portals.set(portal, f);
        this.#start(f, send);
        this.#apply(f, this.#opensReadWrite(f) !== undefined);
        return message;
      }
      case Frontend.Execute:
        this.#start(this.#portals.get(message[5] === 0 ? "" : executePortal(message)) ?? NONE, send);
        return message;
      case Frontend.Close: {
        const { kind, name } = closeTarget(message);
        (kind === "S" ? this.#statements : this.#portals).delete(name);
        this.#unitOpen = true;
        return message;
      }
      case Frontend.Describe:
        this.#unitOpen = true;
        return message;
      case Frontend.Sync:
      case Frontend.FunctionCall:
        this.#unitOpen = false;
        this.#units.push("client");
        return message;
      default:
        return message;
    }
  }

  /** An extended-protocol message that runs or prepares a statement: a switch only where it opens the unit. */
  #start(facts: BackstopFacts, send: (bytes: Buffer) => void): void {
    if (!this.#unitOpen) this.#switchFor(facts, send);
    this.#unitOpen = true;
  }

  /**
   * Looks at a server message before anything else does: true when it answers one of the gateway's own switches, or
   * reports a change of default_transaction_read_only (the gateway's business: the client keeps seeing its start
   * value), and must not reach the client.
   */
  received(type: number, message: Buffer): boolean {
    if (type === Backend.ParameterStatus && isDefaultReadOnlyStatus(message)) {
      this.#defaultReadOnly = parameterValue(message) === "on";
      return true;
    }
    const head = this.#units[0];
    const ours = head !== undefined && head !== "client";
    if (type === Backend.ReadyForQuery) {
      this.#units.shift();
      if (!ours && this.#units.length === 0) this.#settled(message[5]!);
      return ours;
    }
    if (ours && type === Backend.ErrorResponse) this.#switchFailed(head);
    // Notifications belong to the session, whoever's statement is running.
    return ours && type !== Backend.NotificationResponse && type !== Backend.ParameterStatus;
  }

  /** A plain BEGIN is sent as BEGIN READ WRITE (on a line of its own: the text may end with a comment). */
  #opensReadWrite(facts: BackstopFacts): string | undefined {
    return facts.plainBegin === undefined || this.#readOnlySession ? undefined : `${facts.plainBegin}\nREAD WRITE`;
  }

  /**
   * A switch of the gateway's failed: cancelled by the client's CancelRequest, or sent into a block that had failed.
   * What it was to change is unknown now; unknown means asserted again before the next statement that needs it, and
   * a block's savepoint taken for closed (a failed block is rolled back by the client, which ends it anyway).
   */
  #switchFailed(unit: Unit): void {
    if (unit === "default") this.#defaultReadOnly = undefined;
    else if (this.#block !== undefined) this.#block.entered = unit === "leave";
  }

  /** Nothing is in flight and the server says where the session stands: trust it over what was predicted. */
  #settled(status: number): void {
    if (!this.#reported) this.#defaultReadOnly = undefined;
    if (status === 0x49 /* I */) this.#block = undefined;
    else this.#block ??= { readWrite: false, entered: false, savepoints: [], holdCursor: false, wrote: false };
  }

  /** Sends the gateway's switch, if one is due before a unit that starts with this statement string. */
  #switchFor(facts: BackstopFacts, send: (bytes: Buffer) => void): void {
    const block = this.#block;
    if (block === undefined) {
      if (facts.need === "none") return;
      // A session that may only read never switches off; it switches on again where something else turned it off.
      const readOnly = facts.need === "read" || this.#readOnlySession;
      // A unit of the client's still in flight may turn the default off behind the analysis (a function calling
      // set_config): its report comes too late for a read pipelined behind it, which gets the switch anyway.
      if (this.#defaultReadOnly === readOnly && !(readOnly && this.#units.includes("client"))) return;
      this.#defaultReadOnly = readOnly;
      this.#send(readOnly ? DEFAULT_READ_ONLY : DEFAULT_READ_WRITE, send, "default");
      return;
    }
    // A hold cursor's query runs at COMMIT, after PostgreSQL has committed (and so left) every savepoint: a block that
    // holds one, or that never wrote (a hold cursor may have been declared by code the analysis cannot see), commits
    // read-only at its top level (going read-only is allowed at any time).
    if (facts.controls[0]?.kind === "commit" && block.readWrite && (block.holdCursor || !block.wrote)) {
      this.#send(block.entered ? LEAVE_INTO_READ_ONLY_TOP : READ_ONLY_TOP, send, "top");
      block.entered = false;
      block.readWrite = false;
      return;
    }
    if (facts.need === "read" && block.readWrite && !block.entered) {
      block.entered = true;
      this.#send(ENTER_READ_ONLY, send, "enter");
    } else if (facts.need === "write" && block.entered) {
      block.entered = false;
      this.#send(LEAVE_READ_ONLY, send, "leave");
    }
  }

  #send(switchQuery: Buffer, send: (bytes: Buffer) => void, unit: Unit): void {
    send(switchQuery);
    this.#units.push(unit);
  }

  /** Follows what a statement string does to the transaction block, in order. */
  #apply(facts: BackstopFacts, openedReadWrite: boolean): void {
    if (facts.resetsAll) this.#defaultReadOnly = this.#reported ? true : undefined;
    for (const control of facts.controls) this.#control(control, openedReadWrite);
    if (this.#block === undefined) return;
    if (facts.holdCursor) this.#block.holdCursor = true;
    // Mid-unit too (pipelined behind a BEGIN, say): its deferred triggers must still fire read-write at COMMIT.
    if (facts.need === "write") this.#block.wrote = true;
  }

  #control(control: TransactionControl, openedReadWrite: boolean): void {
    const block = this.#block;
    switch (control.kind) {
      case "begin":
        this.#block ??= {
          readWrite: openedReadWrite || (control.readOnly === undefined && this.#defaultReadOnly === false),
          entered: false,
          savepoints: [],
          holdCursor: false,
          wrote: false,
        };
        return;
      case "commit":
      case "rollback":
        if (block === undefined) return;
        if (control.chain) {
          block.entered = false;
          block.savepoints = [];
          block.holdCursor = false;
          block.wrote = false;
        } else {
          this.#block = undefined;
        }
        return;
      case "prepare":
        this.#block = undefined;
        return;
      case "savepoint":
        block?.savepoints.push({ name: control.savepoint ?? "", entered: block.entered });
        return;
      case "release":
      case "rollback_to": {
        if (block === undefined) return;
        const at = block.savepoints.findLastIndex((s) => s.name === control.savepoint);
        if (at < 0) return;
        // Ours, if made after theirs, goes with it; if made before, theirs was made inside it and it stays.
        block.entered = block.savepoints[at]!.entered;
        block.savepoints.length = control.kind === "release" ? at : at + 1;
        return;
      }
      case "prepared":
        return;
    }
  }
}

function isDefaultReadOnlyStatus(message: Buffer): boolean {
  return message[0] === Backend.ParameterStatus && message.toString("latin1", 5, 5 + REPORTED.length) === REPORTED;
}

function parameterValue(message: Buffer): string {
  const start = 5 + REPORTED.length;
  const end = message.indexOf(0, start);
  return message.toString("utf8", start, end < 0 ? message.length : end);
}
