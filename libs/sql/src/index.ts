export { analyze, fingerprintOf, initSqlAnalysis } from "./analyze.ts";
export { classRank, maxClass, STATEMENT_CLASSES, type StatementClass } from "./classes.ts";
export { SqlAnalysisError, type SqlAnalysisErrorCode } from "./errors.ts";
export type {
  Analysis,
  AnalyzeOptions,
  FunctionCatalog,
  StatementAnalysis,
  StatementFlags,
  TransactionControl,
} from "./types.ts";
export { PROTECTED_SETTINGS } from "./walk.ts";
