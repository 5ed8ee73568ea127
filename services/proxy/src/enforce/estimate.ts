import type { ConnectionOptions } from "node:tls";
import type { Target } from "@agentgate/config";
import type { Logger } from "pino";
import { targetClient } from "../target-client.ts";

interface PlanNode {
  "Node Type"?: string;
  "Plan Rows"?: number;
  Plans?: PlanNode[];
}

/** What an approver is shown of a statement's impact: the planner's row estimate; -1 when there is none. */
export type Estimator = (sql: string) => Promise<bigint>;

/**
 * Asks the target's planner how many rows a DML statement would touch: EXPLAIN (FORMAT JSON) on the gateway's own
 * connection, read-only, with a short statement timeout, over the extended protocol (one statement, never a
 * string the server could split). Nothing is executed. Any failure (parameters it cannot plan without, a target
 * that is down) gives -1: the request goes out without an estimate rather than not at all.
 */
export function createEstimator(target: Target, tls: ConnectionOptions | undefined, logger: Logger): Estimator {
  return async (sql) => {
    const client = targetClient(target, tls, "agentgate-estimate", {
      options: "-c default_transaction_read_only=on -c statement_timeout=2000",
      connectionTimeoutMillis: 2000,
    });
    try {
      await client.connect();
      // A named statement: node-postgres sends it with Parse, which takes exactly one statement.
      const { rows } = await client.query({ name: "agentgate_estimate", text: `EXPLAIN (FORMAT JSON) ${sql}` });
      const plan = (rows[0]?.["QUERY PLAN"] as { Plan?: PlanNode }[] | undefined)?.[0]?.Plan;
      // INSERT, UPDATE, DELETE and MERGE plan as a ModifyTable node returning nothing; the rows it changes are
      // what its input produces.
      const estimate = (plan?.["Node Type"] === "ModifyTable" ? plan.Plans?.[0] : plan)?.["Plan Rows"];
      return typeof estimate === "number" ? BigInt(Math.round(estimate)) : -1n;
    } catch (error) {
      logger.debug({ err: error }, "no row estimate for the approval request");
      return -1n;
    } finally {
      await client.end().catch(() => undefined);
    }
  };
}
