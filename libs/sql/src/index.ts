export { analyze, fingerprintOf, initSqlAnalysis } from "./analyze.ts";
export { classRank, maxClass, STATEMENT_CLASSES, type StatementClass } from "./classes.ts";
export { SqlAnalysisError, type SqlAnalysisErrorCode } from "./errors.ts";
export { FIXED_EFFECT_NAMES, routineClasses } from "./functions.ts";
export type {
  Analysis,
  AnalyzeOptions,
  FunctionCatalog,
  StatementAnalysis,
  StatementFlags,
  TargetFacts,
  TransactionControl,
} from "./types.ts";
export { PROTECTED_SETTINGS } from "./walk.ts";
