export {
  DETECTOR_KINDS,
  type Detection,
  type DetectorKind,
  detect,
  luhn,
  type Redaction,
  redactJsonText,
  redactText,
} from "./detectors.ts";
export { MaskingError, type MaskingErrorCode, type MaskRulesIssue } from "./errors.ts";
export { createHasher, type Hasher } from "./hmac.ts";
export {
  analyzeStatement,
  type ColumnLineage,
  type ColumnSource,
  type ColumnsLineage,
  type ColumnUse,
  defaultIsOpaqueFunction,
  initLineage,
  type Lineage,
  type LineageOptions,
  lineageOfStatement,
  type OutputLineage,
  outputLineage,
  type Source,
  type StarLineage,
  type StatementAnalysis,
  statementLineages,
  type UseKind,
  type WholeRowSource,
} from "./lineage.ts";
export { refusalMessage, refusedUse, type UseRefusal } from "./predicates.ts";
export {
  type CopyCsvOptions,
  type CopyTextOptions,
  createRowMasker,
  type MaskPlan,
  maskCopyCsvRow,
  maskCopyTextRow,
  maskDataRow,
  type RowMasker,
} from "./rows.ts";
export {
  type ColumnMatcher,
  DEFAULT_KEEP,
  DEFAULT_MASKED_PREDICATES,
  DETECT,
  derivedMask,
  MASK_STRATEGIES,
  MASKED_PREDICATES,
  type Mask,
  type MaskedPredicates,
  type MaskRule,
  type MaskStrategy,
  maskRulesSchema,
  masksFor,
  parseMaskRules,
  strictest,
} from "./rules.ts";
export { type CopyFormat, type StatementShape, statementShapes } from "./statements.ts";
export { type CellMasker, type ColumnType, cellMasker, maskValue, OID } from "./values.ts";
