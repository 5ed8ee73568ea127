// Principals and events the decider tests share.
import type { Principal } from "@agentgate/events";
import type { Requested } from "../approval-decider.ts";

export const who = (subject: string, groups: string[] = [], issuer = "https://idp"): Principal => ({
  $typeName: "agentgate.v1.Principal",
  subject,
  groups,
  issuer,
  clientId: "",
});

export const at = new Date("2026-11-21T12:00:00Z");
export const later = (seconds: number): Date => new Date(at.getTime() + seconds * 1000);

export const requester = who("agent", ["agents", "dbas"]);
export const dba1 = who("dba1", ["dbas"]);
export const dba2 = who("dba2", ["dbas"]);
export const dba3 = who("dba3", ["dbas", "analysts"]);
export const analyst = who("analyst", ["analysts"]);

/** The event of a request by `requester` that members of dbas approve; `changes` override any field. */
export const requested = (changes: Partial<Requested> = {}): Requested => ({
  type: "requested",
  approvalId: "a1",
  requester,
  target: "app",
  sessionId: "s1",
  sql: "DELETE FROM orders",
  parameters: [],
  rule: "r",
  reason: "why",
  approverGroups: ["dbas"],
  approvalsRequired: 1,
  estimatedRows: 10n,
  objects: ["orders"],
  fingerprint: "f",
  mode: "wait",
  grantClasses: [],
  grantSeconds: 0,
  at,
  expiresAt: later(60),
  ...changes,
});

/** A grant request: ddl on app for 600 s. */
export const grantRequested = (changes: Partial<Requested> = {}): Requested =>
  requested({
    approvalId: "g1",
    sessionId: "",
    sql: "grant ddl on app for 600 s",
    rule: "grant",
    objects: ["ddl"],
    mode: "grant",
    grantClasses: ["ddl"],
    grantSeconds: 600,
    ...changes,
  });
