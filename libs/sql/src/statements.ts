// What each kind of statement does. Queries and DML are walked in walk.ts; this file decides the class of every
// other statement kind PostgreSQL has, and anything it does not know is "admin" (fail closed).
import type {
  CopyStmt,
  CreateTableAsStmt,
  DefElem,
  DropStmt,
  ExecuteStmt,
  ExplainStmt,
  Node,
  PrepareStmt,
  RangeVar,
  TransactionStmt,
  VariableSetStmt,
} from "libpg-query";
import type { StatementClass } from "./classes.ts";
import { type Context, mergeFacts, newFacts, type Scope } from "./facts.ts";
import type { TransactionControl } from "./types.ts";
import { changesSetting, dotted, nodeTag, relation, visit, visitWrapped } from "./walk.ts";

type Payload = Record<string, unknown>;

/** DeclareCursorStmt.options: WITH HOLD (parsenodes.h). */
const CURSOR_OPT_HOLD = 0x0020;

/** Statement kinds whose class is all there is to say (beyond the relations and expressions walked below). */
const FIXED: ReadonlyMap<string, readonly StatementClass[]> = new Map<string, readonly StatementClass[]>([
  ["FetchStmt", ["read"]],
  ["ClosePortalStmt", ["read"]],
  ["VariableShowStmt", ["session"]],
  ["ListenStmt", ["session"]],
  ["UnlistenStmt", ["session"]],
  // NOTIFY delivers a message that other sessions act on (job queues, cache invalidation): an observable write.
  ["NotifyStmt", ["write"]],
  ["ConstraintsSetStmt", ["transaction"]],
  ["LockStmt", ["write"]],
  ["TruncateStmt", ["write"]],
  ["RefreshMatViewStmt", ["write"]],
  ["GrantStmt", ["privilege"]],
  ["GrantRoleStmt", ["privilege"]],
  ["CreateRoleStmt", ["privilege"]],
  ["AlterRoleStmt", ["privilege"]],
  ["DropRoleStmt", ["privilege"]],
  ["AlterDefaultPrivilegesStmt", ["privilege"]],
  ["ReassignOwnedStmt", ["privilege"]],
  ["AlterOwnerStmt", ["privilege"]],
  ["SecLabelStmt", ["privilege"]],
  ["CreateUserMappingStmt", ["privilege"]],
  ["AlterUserMappingStmt", ["privilege"]],
  ["DropUserMappingStmt", ["privilege"]],
  ["CreatePolicyStmt", ["ddl", "privilege"]],
  ["AlterPolicyStmt", ["ddl", "privilege"]],
  ["DropOwnedStmt", ["ddl", "privilege"]],
  ["VacuumStmt", ["admin"]],
  ["ClusterStmt", ["admin"]],
  ["ReindexStmt", ["admin"]],
  ["CheckPointStmt", ["admin"]],
  ["LoadStmt", ["admin"]],
  ["CreateExtensionStmt", ["admin"]],
  ["AlterExtensionStmt", ["admin"]],
  ["AlterExtensionContentsStmt", ["admin"]],
  ["CreateTableSpaceStmt", ["admin"]],
  ["DropTableSpaceStmt", ["admin"]],
  ["AlterTableSpaceOptionsStmt", ["admin"]],
  ["CreatePLangStmt", ["admin"]],
  ["CreateFdwStmt", ["admin"]],
  ["AlterFdwStmt", ["admin"]],
  ["CreateEventTrigStmt", ["admin"]],
  ["AlterEventTrigStmt", ["admin"]],
  ["CreateAmStmt", ["admin"]],
  ["CreateSubscriptionStmt", ["admin"]],
  ["AlterSubscriptionStmt", ["admin"]],
  ["DropSubscriptionStmt", ["admin"]],
  ["CreatePublicationStmt", ["admin"]],
  ["AlterPublicationStmt", ["admin"]],
  ["AlterDatabaseRefreshCollStmt", ["admin"]],
  ["AlterCollationStmt", ["admin"]],
]);

/** Schema changes. Their target relation (relation, view, sequence, table fields) is written; others are read. */
const DDL = new Set([
  "AlterDatabaseStmt",
  "AlterDomainStmt",
  "AlterEnumStmt",
  "AlterForeignServerStmt",
  "AlterFunctionStmt",
  "AlterObjectDependsStmt",
  "AlterObjectSchemaStmt",
  "AlterOpFamilyStmt",
  "AlterOperatorStmt",
  "AlterSeqStmt",
  "AlterStatsStmt",
  "AlterTSConfigurationStmt",
  "AlterTSDictionaryStmt",
  "AlterTableMoveAllStmt",
  "AlterTableStmt",
  "AlterTypeStmt",
  "CommentStmt",
  "CompositeTypeStmt",
  "CreateCastStmt",
  "CreateConversionStmt",
  "CreateDomainStmt",
  "CreateEnumStmt",
  "CreateForeignServerStmt",
  "CreateForeignTableStmt",
  "CreateFunctionStmt",
  "CreateOpClassStmt",
  "CreateOpFamilyStmt",
  "CreateRangeStmt",
  "CreateSchemaStmt",
  "CreateSeqStmt",
  "CreateStatsStmt",
  "CreateStmt",
  "CreateTransformStmt",
  "CreateTrigStmt",
  "CreatedbStmt",
  "DefineStmt",
  "DropdbStmt",
  "ImportForeignSchemaStmt",
  "IndexStmt",
  "RenameStmt",
  "ReplicaIdentityStmt",
  "RuleStmt",
  "ViewStmt",
]);

/** Fields holding the relation a statement changes. */
const TARGET_FIELDS = new Set(["relation", "view", "sequence", "table"]);

/** ALTER TABLE subcommands that change who may see or own rows. */
const PRIVILEGE_SUBCOMMANDS = new Set([
  "AT_EnableRowSecurity",
  "AT_DisableRowSecurity",
  "AT_ForceRowSecurity",
  "AT_NoForceRowSecurity",
  "AT_ChangeOwner",
]);

/** Object types that name relations in DROP and COMMENT. */
const RELATION_OBJECTS = new Set([
  "OBJECT_TABLE",
  "OBJECT_VIEW",
  "OBJECT_MATVIEW",
  "OBJECT_INDEX",
  "OBJECT_SEQUENCE",
  "OBJECT_FOREIGN_TABLE",
]);

/** Object types whose name list ends with a name inside a relation (trigger ON t, column t.c). */
const RELATION_MEMBERS = new Set(["OBJECT_TRIGGER", "OBJECT_RULE", "OBJECT_POLICY", "OBJECT_COLUMN"]);

const ADMIN_OBJECTS = new Set([
  "OBJECT_EXTENSION",
  "OBJECT_EVENT_TRIGGER",
  "OBJECT_FDW",
  "OBJECT_LANGUAGE",
  "OBJECT_ACCESS_METHOD",
  "OBJECT_PUBLICATION",
]);

/** Classifies one statement (a node's tag and payload) into cx.facts. */
export function statement(tag: string, payload: Payload, cx: Context, scope: Scope | undefined): void {
  const facts = cx.facts;
  switch (tag) {
    case "SelectStmt":
      facts.classes.add("read");
      visit({ SelectStmt: payload }, cx, scope);
      return;
    case "InsertStmt":
    case "UpdateStmt":
    case "DeleteStmt":
    case "MergeStmt":
      visit({ [tag]: payload }, cx, scope);
      return;
    case "ExplainStmt":
      explain(payload as ExplainStmt, cx, scope);
      return;
    case "DeclareCursorStmt":
      // A cursor does what its query does; FETCH then only reads.
      facts.classes.add("read");
      if (((payload.options as number | undefined) ?? 0) & CURSOR_OPT_HOLD) facts.flags.holdCursor = true;
      visit(payload.query, cx, scope);
      return;
    case "CopyStmt":
      copy(payload as CopyStmt, cx, scope);
      return;
    case "PrepareStmt":
      prepare(payload as PrepareStmt, cx);
      return;
    case "ExecuteStmt":
      execute(payload as ExecuteStmt, cx, scope);
      return;
    case "DeallocateStmt":
      facts.classes.add("session");
      cx.session.deallocate(payload.isall === true ? undefined : String(payload.name ?? ""));
      return;
    case "DoStmt":
      facts.classes.add("procedural").add("write");
      facts.flags.dynamicSql = true;
      return;
    case "CallStmt":
      call(payload, cx, scope);
      return;
    case "TransactionStmt":
      transaction(payload as TransactionStmt, cx);
      return;
    case "VariableSetStmt":
      variableSet(payload as VariableSetStmt, cx);
      return;
    case "DiscardStmt":
      // DISCARD ALL includes RESET ALL and SET SESSION AUTHORIZATION DEFAULT.
      facts.classes.add("session");
      if (payload.target === "DISCARD_ALL") changesSetting("all", cx);
      return;
    case "AlterSystemStmt":
      facts.classes.add("admin");
      settingOf(payload.setstmt as VariableSetStmt | undefined, cx);
      return;
    case "AlterRoleSetStmt":
      facts.classes.add("privilege");
      settingOf(payload.setstmt as VariableSetStmt | undefined, cx);
      return;
    case "AlterDatabaseSetStmt":
      facts.classes.add("ddl");
      settingOf(payload.setstmt as VariableSetStmt | undefined, cx);
      return;
    case "DropStmt":
      drop(payload as DropStmt, cx);
      return;
    case "CreateTableAsStmt":
      createTableAs(payload as CreateTableAsStmt, cx, scope);
      return;
  }
  // What these statements define (a view's query, a policy's expression, a default) is stored, not run now.
  const stored: Context = cx.inert === true ? cx : { ...cx, inert: true };
  const fixed = FIXED.get(tag);
  if (fixed !== undefined) {
    for (const name of fixed) facts.classes.add(name);
    targets(tag, payload, stored, scope);
    return;
  }
  if (DDL.has(tag)) {
    facts.classes.add("ddl");
    if (tag === "AlterTableStmt" && alterTablePrivileges(payload)) facts.classes.add("privilege");
    if ((tag === "CreateFunctionStmt" || tag === "AlterFunctionStmt") && securityDefiner(payload)) {
      facts.classes.add("privilege");
    }
    if (tag === "CommentStmt") commentTarget(payload, cx);
    targets(tag, payload, stored, scope);
    return;
  }
  // A statement kind this library does not know (a newer PostgreSQL): assume the worst.
  facts.classes.add("admin");
  visit(payload, cx, scope);
}

/** Records changed relations as writes and walks the rest (expressions, referenced relations as reads). */
function targets(tag: string, payload: Payload, cx: Context, scope: Scope | undefined): void {
  for (const key in payload) {
    const value = payload[key];
    if (TARGET_FIELDS.has(key)) relation(value as RangeVar, cx, undefined, "write");
    else if (key === "relations" && (tag === "LockStmt" || tag === "TruncateStmt")) writeAll(value, cx);
    else if (key === "objects" && tag === "GrantStmt") writeAll(value, cx);
    else if (key === "rels" && tag === "VacuumStmt") {
      for (const rel of (value ?? []) as Payload[]) {
        relation((rel.VacuumRelation as { relation?: RangeVar } | undefined)?.relation, cx, undefined, "write");
      }
    } else if (key === "base" && tag === "CreateForeignTableStmt") targets("CreateStmt", value as Payload, cx, scope);
    else if (key === "typevar" && tag === "CompositeTypeStmt")
      continue; // a row type, not a relation
    else visit(value, cx, scope);
  }
}

function writeAll(nodes: unknown, cx: Context): void {
  for (const node of (nodes ?? []) as { RangeVar?: RangeVar }[]) relation(node.RangeVar, cx, undefined, "write");
}

function explain(stmt: ExplainStmt, cx: Context, scope: Scope | undefined): void {
  const inner = newFacts();
  statementNode(stmt.query, { facts: inner, session: cx.session }, scope);
  cx.facts.classes.add("read");
  if (option(stmt.options, "analyze")) {
    mergeFacts(inner, cx.facts);
    cx.facts.flags.explainAnalyze = true;
    return;
  }
  // Plain EXPLAIN only plans: it reads the catalog and statistics of everything the statement touches.
  for (const name of [...inner.reads, ...inner.writes]) cx.facts.reads.add(name);
  for (const name of inner.columns) cx.facts.columns.add(name);
  for (const name of inner.functions) cx.facts.functions.add(name);
}

/** Whether a boolean option (EXPLAIN's ANALYZE) is on; an argument that is not clearly false counts as true. */
function option(options: readonly Node[] | undefined, name: string): boolean {
  for (const node of options ?? []) {
    const def = (node as { DefElem?: DefElem }).DefElem;
    if (def?.defname !== name) continue;
    const arg = def.arg as Payload | undefined;
    if (arg === undefined) return true;
    const text = (arg.String as { sval?: string } | undefined)?.sval?.toLowerCase();
    if (text !== undefined) return !(text === "false" || text === "off" || text === "0" || text === "no");
    if (arg.Integer !== undefined) return ((arg.Integer as { ival?: number }).ival ?? 0) !== 0;
    if (arg.Boolean !== undefined) return (arg.Boolean as { boolval?: boolean }).boolval === true;
    return true;
  }
  return false;
}

function copy(stmt: CopyStmt, cx: Context, scope: Scope | undefined): void {
  const facts = cx.facts;
  const serverSide = stmt.is_program === true || stmt.filename !== undefined;
  if (stmt.is_program === true) facts.flags.copyProgram = true;
  else if (stmt.filename !== undefined) facts.flags.copyFile = true;
  if (serverSide) facts.classes.add("admin");
  for (const column of stmt.attlist ?? []) facts.columns.add(dotted([column]));
  if (stmt.is_from === true) {
    facts.classes.add("write");
    if (!serverSide) facts.classes.add("copy-in");
    relation(stmt.relation, cx, undefined, "write");
    visitWrapped(stmt.whereClause, cx, scope);
  } else {
    facts.classes.add("read");
    if (!serverSide) facts.classes.add("copy-out");
    relation(stmt.relation, cx, undefined, "read");
    visitWrapped(stmt.query, cx, scope);
  }
}

/** PREPARE does what its statement will do when executed; the body is remembered for EXECUTE in this string. */
function prepare(stmt: PrepareStmt, cx: Context): void {
  const body = newFacts();
  statementNode(stmt.query, { facts: body, session: cx.session }, undefined);
  const name = stmt.name ?? "";
  cx.session.prepare(name, body);
  mergeFacts(body, cx.facts);
  cx.facts.flags.prepare = name;
}

/** EXECUTE does what the prepared statement does; an unknown one may do anything (dynamic SQL, fail closed). */
function execute(stmt: ExecuteStmt, cx: Context, scope: Scope | undefined): void {
  const name = stmt.name ?? "";
  visit(stmt.params, cx, scope);
  const body = cx.session.resolve(name);
  if (body !== undefined) mergeFacts(body, cx.facts);
  else {
    cx.facts.classes.add("procedural").add("write");
    cx.facts.flags.dynamicSql = true;
  }
  cx.facts.flags.execute = name;
}

/** CALL runs a procedure: opaque code, so procedural and a write. The procedure is not judged as a function. */
function call(payload: Payload, cx: Context, scope: Scope | undefined): void {
  cx.facts.classes.add("procedural").add("write");
  const funccall = (payload.funccall ?? {}) as { funcname?: Node[]; args?: Node[] };
  cx.facts.functions.add(dotted(funccall.funcname).toLowerCase());
  visit(funccall.args, cx, scope);
}

function transaction(stmt: TransactionStmt, cx: Context): void {
  cx.facts.classes.add("transaction");
  const control = transactionControl(stmt);
  if (control !== undefined) cx.facts.flags.transaction = control;
  switch (stmt.kind) {
    case "TRANS_STMT_BEGIN":
    case "TRANS_STMT_START":
      if (readWrite(stmt.options)) changesSetting("transaction_read_only", cx);
      return;
    // Two-phase commit leaves a transaction behind the session, and COMMIT/ROLLBACK PREPARED act on any of them.
    case "TRANS_STMT_PREPARE":
    case "TRANS_STMT_COMMIT_PREPARED":
    case "TRANS_STMT_ROLLBACK_PREPARED":
      cx.facts.classes.add("admin");
      return;
    default:
      return;
  }
}

const CONTROL_KINDS: Readonly<Record<string, TransactionControl["kind"]>> = {
  TRANS_STMT_BEGIN: "begin",
  TRANS_STMT_START: "begin",
  TRANS_STMT_COMMIT: "commit",
  TRANS_STMT_ROLLBACK: "rollback",
  TRANS_STMT_SAVEPOINT: "savepoint",
  TRANS_STMT_RELEASE: "release",
  TRANS_STMT_ROLLBACK_TO: "rollback_to",
  TRANS_STMT_PREPARE: "prepare",
  TRANS_STMT_COMMIT_PREPARED: "prepared",
  TRANS_STMT_ROLLBACK_PREPARED: "prepared",
};

function transactionControl(stmt: TransactionStmt): TransactionControl | undefined {
  const kind = stmt.kind === undefined ? undefined : CONTROL_KINDS[stmt.kind];
  if (kind === undefined) return undefined;
  const control: TransactionControl = { kind };
  if (stmt.savepoint_name !== undefined) control.savepoint = stmt.savepoint_name;
  if (stmt.chain === true) control.chain = true;
  const readOnly = transactionReadOnly(stmt.options);
  if (readOnly !== undefined) control.readOnly = readOnly;
  return control;
}

/** Whether transaction options say READ WRITE (transaction_read_only = 0). */
function readWrite(options: readonly Node[] | undefined): boolean {
  return transactionReadOnly(options) === false;
}

/** READ ONLY (true), READ WRITE (false), or nothing said (undefined). */
function transactionReadOnly(options: readonly Node[] | undefined): boolean | undefined {
  for (const node of options ?? []) {
    const def = (node as { DefElem?: DefElem }).DefElem;
    if (def?.defname !== "transaction_read_only") continue;
    const value = (def.arg as { A_Const?: { ival?: { ival?: number } } } | undefined)?.A_Const?.ival?.ival;
    return value === 1;
  }
  return undefined;
}

function variableSet(stmt: VariableSetStmt, cx: Context): void {
  if (stmt.kind === "VAR_SET_MULTI") {
    // SET TRANSACTION ..., SET SESSION CHARACTERISTICS AS TRANSACTION ..., SET TRANSACTION SNAPSHOT.
    const session = stmt.name === "SESSION CHARACTERISTICS";
    cx.facts.classes.add(session ? "session" : "transaction");
    if (readWrite(stmt.args)) {
      changesSetting(session ? "default_transaction_read_only" : "transaction_read_only", cx);
    }
    return;
  }
  cx.facts.classes.add("session");
  settingOf(stmt, cx);
}

/** SET/RESET of one setting (or RESET ALL); GUC names are case-insensitive. */
function settingOf(stmt: VariableSetStmt | undefined, cx: Context): void {
  if (stmt === undefined) return;
  changesSetting(stmt.kind === "VAR_RESET_ALL" ? "all" : (stmt.name ?? "").toLowerCase(), cx);
}

function drop(stmt: DropStmt, cx: Context): void {
  const type = stmt.removeType ?? "";
  cx.facts.classes.add(ADMIN_OBJECTS.has(type) ? "admin" : "ddl");
  if (type === "OBJECT_POLICY") cx.facts.classes.add("privilege");
  for (const object of stmt.objects ?? []) {
    const names = (object as { List?: { items?: Node[] } }).List?.items;
    if (names === undefined) continue;
    if (RELATION_OBJECTS.has(type)) cx.facts.writes.add(dotted(names));
    else if (RELATION_MEMBERS.has(type) && names.length > 1) cx.facts.writes.add(dotted(names.slice(0, -1)));
  }
}

function commentTarget(payload: Payload, cx: Context): void {
  const type = String(payload.objtype ?? "");
  const names = (payload.object as { List?: { items?: Node[] } } | undefined)?.List?.items;
  if (names === undefined) return;
  if (RELATION_OBJECTS.has(type)) cx.facts.writes.add(dotted(names));
  else if (RELATION_MEMBERS.has(type) && names.length > 1) cx.facts.writes.add(dotted(names.slice(0, -1)));
}

/** CREATE TABLE AS / CREATE MATERIALIZED VIEW / SELECT INTO: creates a relation and fills it. */
function createTableAs(stmt: CreateTableAsStmt, cx: Context, scope: Scope | undefined): void {
  cx.facts.classes.add("ddl").add("write");
  relation(stmt.into?.rel, cx, undefined, "write");
  statementNode(stmt.query, cx, scope);
}

function alterTablePrivileges(payload: Payload): boolean {
  return ((payload.cmds ?? []) as { AlterTableCmd?: { subtype?: string } }[]).some((cmd) =>
    PRIVILEGE_SUBCOMMANDS.has(cmd.AlterTableCmd?.subtype ?? ""),
  );
}

/** SECURITY DEFINER functions run with their owner's rights: creating one hands those rights out. */
function securityDefiner(payload: Payload): boolean {
  const options = [...((payload.options ?? []) as Node[]), ...((payload.actions ?? []) as Node[])];
  return options.some((node) => {
    const def = (node as { DefElem?: DefElem }).DefElem;
    return def?.defname === "security" && (def.arg as { Boolean?: { boolval?: boolean } })?.Boolean?.boolval === true;
  });
}

/** Classifies a wrapped statement node (EXPLAIN's, PREPARE's or CREATE TABLE AS's query). */
export function statementNode(node: Node | undefined, cx: Context, scope: Scope | undefined): void {
  if (node === undefined) return;
  const tag = nodeTag(node);
  if (tag === undefined) return;
  statement(tag, (node as unknown as Record<string, Payload>)[tag] ?? {}, cx, scope);
}
