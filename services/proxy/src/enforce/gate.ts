import type { Principal } from "@agentgate/identity";
import { type Analysis, analyze, fingerprintOf, SqlAnalysisError, type TargetFacts } from "@agentgate/sql";
import { Frontend } from "@agentgate/wire";
import type { Logger } from "pino";
import type { ApprovalPort, ApprovalRequest } from "./approvals.ts";
import { BACKSTOP_SAVEPOINT, type BackstopFacts, backstopFacts } from "./backstop.ts";
import type { Estimator } from "./estimate.ts";
import { bindStatement, closeTarget, parseFields, queryText } from "./messages.ts";
import { type DecideQuery, type Decision, type PolicyPort, principalKey, type StatementFacts } from "./policy.ts";
import { refusalExtended, refusalQuery } from "./refusal.ts";

/** What the gate learnt about a statement, for the audit record and the read-only backstop. */
export interface Judgement {
  statements: StatementFacts[];
  fingerprint: string;
  decision: Decision | undefined;
  backstop: BackstopFacts;
}

/**
 * What to send upstream instead of a client message: nothing changed, or the message that raises the refusal. A
 * statement that needs approval is a refusal until `approval` (the wait for approvers) says otherwise: whoever
 * forgets to ask refuses it, never runs it.
 */
export type Verdict =
  | { allowed: true; judgement?: Judgement }
  | {
      allowed: false;
      replacement: Buffer;
      extended: boolean;
      judgement?: Judgement;
      /** For require_approval: asks the approvers and resolves to their verdict (run once, or refused). */
      approval?: () => Promise<Verdict>;
    };

const ALLOWED: Verdict = { allowed: true };

export interface GateOptions {
  policy: PolicyPort;
  /** Where require_approval statements wait; without it they are refused with a message that says so. */
  approvals?: { port: ApprovalPort; timeoutMs: number; mode: "wait" | "deferred"; estimate: Estimator } | undefined;
  principal: Principal | undefined;
  target: string;
  sessionId: string;
  /** The principal may only read here: changing a protected setting is refused whatever the rules say. */
  readOnly: boolean;
  catalog?: GateCatalog | undefined;
  logger: Logger;
}

/** The target's catalog as the gate uses it (enforce/catalog.ts): facts, and when to load them again. */
export interface GateCatalog extends TargetFacts {
  /** DDL went through: the facts must be loaded again before the next statement is judged. */
  stale(): void;
  /** Whether the facts must be loaded before this statement is judged (a reload that can wait runs meanwhile). */
  mustLoad?(): boolean;
  /** Loads when expired; with `unknown`, loads again unless those names were just looked for. */
  fresh?(options?: { unknown?: readonly string[] }): Promise<void>;
}

/**
 * Decides every statement of one session before it reaches the server: simple queries (every statement of a
 * multi-statement string), Parse of the extended protocol (and Bind of a statement refused at Parse), and SQL-level
 * PREPARE/EXECUTE (EXECUTE is judged by what was prepared). A decision is synchronous when cached.
 */
export class StatementGate {
  readonly #o: GateOptions;
  /** SQL-level PREPAREs allowed in this session, by name, to resolve EXECUTE. */
  readonly #prepared = new Map<string, string>();
  /** Protocol-level statements refused at Parse, by name, with the refusal to repeat on Bind. */
  readonly #refused = new Map<string, Buffer>();
  readonly #principalKey: string;

  constructor(options: GateOptions) {
    this.#o = options;
    this.#principalKey = principalKey(options.principal, options.target);
  }

  /** Whether messages of this type are decided here. */
  static decides(type: number): boolean {
    return type === Frontend.Query || type === Frontend.Parse || type === Frontend.Bind || type === Frontend.Close;
  }

  check(type: number, message: Buffer, signal: AbortSignal): Verdict | Promise<Verdict> {
    switch (type) {
      case Frontend.Query:
        return this.#decideText(queryText(message), false, undefined, signal);
      case Frontend.Parse: {
        const { name, text } = parseFields(message);
        return this.#decideText(text, true, name, signal);
      }
      case Frontend.Bind: {
        const refusal = this.#refused.get(bindStatement(message));
        return refusal === undefined ? ALLOWED : { allowed: false, replacement: refusal, extended: true };
      }
      case Frontend.Close: {
        const { kind, name } = closeTarget(message);
        if (kind === "S") this.#refused.delete(name);
        return ALLOWED;
      }
      default:
        return ALLOWED;
    }
  }

  #decideText(
    sql: string,
    extended: boolean,
    statementName: string | undefined,
    signal: AbortSignal,
    reloaded = false,
  ): Verdict | Promise<Verdict> {
    let analysis: Analysis;
    try {
      // No fingerprints here: a decision depends on the facts alone, and each fingerprint costs a second parse.
      analysis = analyze(sql, { prepared: this.#prepared, catalog: this.#o.catalog, fingerprints: false });
    } catch (error) {
      if (!(error instanceof SqlAnalysisError)) throw error;
      // What cannot be parsed is refused with the parser's own words, never passed through.
      return this.#refuse(error.code, error.message, undefined, extended, statementName);
    }
    // Facts the analysis lacks (a view created since the catalog was loaded) or facts DDL made stale: load them,
    // judge again, once. What is still unknown then stays a write (the analysis made it one).
    const catalog = this.#o.catalog;
    if (!reloaded && catalog?.fresh !== undefined) {
      const unknown = analysis.statements.flatMap((s) => s.flags.unresolved ?? []);
      if (unknown.length > 0 || catalog.mustLoad?.() === true) {
        return catalog
          .fresh(unknown.length > 0 ? { unknown } : {})
          .then(() => this.#decideText(sql, extended, statementName, signal, true));
      }
    }
    if (analysis.statements.length === 0) return this.#allowed(analysis, statementName);
    const setting = analysis.statements.find((s) => s.flags.protectedSetting)?.flags.protectedSetting;
    if (setting !== undefined) {
      if (this.#o.readOnly) {
        return this.#refuse(
          "42501",
          `permission denied: this session is read-only and ${setting} cannot be changed`,
          undefined,
          extended,
          statementName,
        );
      }
      // The read-only backstop owns the session default: a client that turned it off would run reads read-write.
      const owned = setting.split(",").find((name) => name === "default_transaction_read_only" || name === "*");
      if (owned !== undefined) {
        return this.#refuse(
          "42501",
          `permission denied: the gateway decides each transaction's read/write mode, and ${owned === "*" ? "a setting named at run time" : owned} cannot be changed`,
          "Writes need no setting: the gateway runs a statement read-write when the policy allows it to write.",
          extended,
          statementName,
        );
      }
    }
    if (analysis.statements.some((s) => s.flags.transaction?.savepoint === BACKSTOP_SAVEPOINT)) {
      // Releasing or rolling back to it would give a read the block's read-write mode.
      return this.#refuse(
        "42501",
        `permission denied: the savepoint name ${BACKSTOP_SAVEPOINT} is reserved by the gateway`,
        "Use another savepoint name.",
        extended,
        statementName,
      );
    }
    const query: DecideQuery = {
      principal: this.#o.principal,
      principalKey: this.#principalKey,
      target: this.#o.target,
      sessionId: this.#o.sessionId,
      sql,
      statements: analysis.statements.map(facts),
      cacheKey: analysis.cacheKey,
    };
    const judged = (decision: Decision | undefined, verdict: Verdict): Verdict => ({
      ...verdict,
      judgement: {
        statements: query.statements,
        fingerprint: analysis.fingerprint,
        decision,
        backstop: backstopFacts(analysis),
      },
    });
    const apply = (decision: Decision): Verdict => {
      const verdict = judged(decision, this.#apply(decision, analysis, extended, statementName));
      if (verdict.allowed || decision.effect !== "require_approval" || this.#o.approvals === undefined) return verdict;
      const hold = () => this.#hold(decision, analysis, sql, extended, statementName, signal);
      return { ...verdict, approval: () => hold().then((v) => judged(decision, v)) };
    };
    const cached = this.#o.policy.cached(query);
    if (cached !== undefined) return apply(cached);
    return this.#o.policy.decide(query, signal).then(
      (decision) => apply(decision),
      (error: unknown) => {
        if (signal.aborted) throw error;
        this.#o.logger.warn({ err: error }, "policy service unavailable: statement refused");
        return judged(
          undefined,
          this.#refuse(
            "57P03",
            "statement refused: the policy service is unavailable and no decision is cached",
            "Retry when the policy service is back.",
            extended,
            statementName,
          ),
        );
      },
    );
  }

  /** The policy's decision as a verdict; a statement that needs approval is refused until its approval says so. */
  #apply(decision: Decision, analysis: Analysis, extended: boolean, statementName: string | undefined): Verdict {
    if (decision.effect === "allow") return this.#allowed(analysis, statementName);
    const rule = decision.rule === "" ? "no rule allows it" : `rule "${decision.rule}"`;
    const message =
      decision.effect === "require_approval"
        ? `statement requires approval (${rule}): ${decision.reason}`
        : `permission denied by policy (${rule}): ${decision.reason}`;
    const hint =
      decision.effect !== "require_approval"
        ? undefined
        : this.#o.approvals === undefined
          ? "Approvals are not available yet; ask an administrator."
          : "Nothing was run: the statement was not put to its approvers.";
    return this.#refuse("42501", message, hint, extended, statementName);
  }

  /**
   * A statement that needs approval: asks the approval service (with the planner's row estimate for DML and the
   * objects it changes), then either holds it until humans decide (wait mode: approved runs it, once; denied, timed
   * out or withdrawn refuses it saying so) or refuses it at once with the approval's id (deferred mode), letting the
   * same principal run exactly that statement once after approval.
   */
  async #hold(
    decision: Decision,
    analysis: Analysis,
    sql: string,
    extended: boolean,
    statementName: string | undefined,
    signal: AbortSignal,
  ): Promise<Verdict> {
    const { port, timeoutMs, mode, estimate } = this.#o.approvals!;
    const rule = decision.rule === "" ? "no rule" : `rule "${decision.rule}"`;
    const requester = principalOf(this.#o.principal);
    let fingerprint = "";
    try {
      fingerprint = fingerprintOf(sql);
    } catch {
      // unparsable statements never get here; an empty fingerprint only weakens the deferred match
    }
    try {
      if (mode === "deferred") {
        const used = await port.consume({ requester, target: this.#o.target, fingerprint, sql });
        if (used !== undefined) {
          this.#o.logger.info({ approval: used }, "approved statement runs (deferred approval used)");
          return this.#allowed(analysis, statementName);
        }
      }
      const writes = [...new Set(analysis.statements.flatMap((s) => s.writes))];
      const dml = analysis.statements.length === 1 && analysis.statements[0]!.classes.includes("write");
      const request: ApprovalRequest = {
        requester,
        target: this.#o.target,
        sessionId: this.#o.sessionId,
        sql,
        rule: decision.rule,
        reason: decision.reason,
        approverGroups: decision.approverGroups,
        approvalsRequired: decision.approvalsRequired,
        estimatedRows: dml ? await estimate(sql) : -1n,
        objects: writes,
        timeoutSeconds: Math.ceil(timeoutMs / 1000),
        mode,
        fingerprint,
      };
      const approval = await port.request(request, signal);
      if (mode === "deferred") {
        return this.#refuse(
          "42501",
          `statement requires approval (${rule}): approval ${approval.id} requested from ${decision.approverGroups.join(", ")}`,
          `Nothing was run. Once it is approved, run the same statement again (within ${Math.round(timeoutMs / 1000)} s); it runs once.`,
          extended,
          statementName,
        );
      }
      this.#o.logger.info({ approval: approval.id, rule: decision.rule }, "statement held for approval");
      const outcome = await port.wait(approval.id, timeoutMs, signal);
      switch (outcome.state) {
        case "approved":
          this.#o.logger.info({ approval: approval.id }, "statement approved: it runs");
          return this.#allowed(analysis, statementName);
        case "denied": {
          const denial = outcome.approval.decisions.find((d) => !d.approved);
          const who = denial?.approver?.subject ?? "an approver";
          return this.#refuse(
            "42501",
            `statement denied by ${who} (approval ${approval.id}): ${denial?.reason ?? ""}`,
            "Nothing was run.",
            extended,
            statementName,
          );
        }
        case "expired":
          return this.#refuse(
            "57014",
            `statement not run: approval ${approval.id} was not decided within ${Math.round(timeoutMs / 1000)} s`,
            "Nothing was run. Ask an approver and run it again.",
            extended,
            statementName,
          );
        case "withdrawn":
          return this.#refuse(
            "57014",
            `canceling statement due to user request (approval ${approval.id} withdrawn)`,
            "Nothing was run.",
            extended,
            statementName,
          );
      }
    } catch (error) {
      if (signal.aborted) throw error;
      this.#o.logger.warn({ err: error }, "approval service unavailable: statement refused");
      return this.#refuse(
        "57P03",
        `statement requires approval (${rule}) and the approval service is unavailable`,
        "Nothing was run. Retry when the approval service is back.",
        extended,
        statementName,
      );
    }
  }

  #allowed(analysis: Analysis, statementName: string | undefined): Verdict {
    for (const statement of analysis.statements) {
      if (statement.flags.prepare !== undefined) this.#prepared.set(statement.flags.prepare, statement.text);
      // A DDL statement may create or replace functions: the next session reads the catalog again.
      if (statement.classes.includes("ddl")) this.#o.catalog?.stale();
    }
    if (statementName !== undefined) this.#refused.delete(statementName);
    return ALLOWED;
  }

  #refuse(
    code: string,
    message: string,
    hint: string | undefined,
    extended: boolean,
    statementName: string | undefined,
  ): Verdict {
    if (!extended) return { allowed: false, replacement: refusalQuery(code, message, hint), extended: false };
    const replacement = refusalExtended(code, message, hint);
    if (statementName !== undefined && statementName !== "") this.#refused.set(statementName, replacement);
    return { allowed: false, replacement, extended: true };
  }
}

function facts(s: Analysis["statements"][number]): StatementFacts {
  return {
    class: s.class,
    classes: s.classes,
    reads: s.reads,
    writes: s.writes,
    functions: s.functions,
    fingerprint: s.fingerprint,
    protectedSetting: s.flags.protectedSetting ?? "",
  };
}

function principalOf(principal: Principal | undefined): ApprovalRequest["requester"] {
  return principal === undefined
    ? { subject: "anonymous", groups: [], issuer: "", clientId: "" }
    : {
        subject: principal.subject,
        groups: principal.groups,
        issuer: principal.issuer,
        clientId: principal.clientId ?? "",
      };
}
