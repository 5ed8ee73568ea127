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
  type ColumnLineage,
  type ColumnSource,
  type ColumnsLineage,
  defaultIsOpaqueFunction,
  initLineage,
  type Lineage,
  type LineageOptions,
  lineageOfStatement,
  type OutputLineage,
  outputLineage,
  type Source,
  type StarLineage,
  statementLineages,
  type WholeRowSource,
} from "./lineage.ts";
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
  DETECT,
  MASK_STRATEGIES,
  type Mask,
  type MaskRule,
  type MaskStrategy,
  maskRulesSchema,
  masksFor,
  parseMaskRules,
  strictest,
} from "./rules.ts";
export { type CopyFormat, type StatementShape, statementShapes } from "./statements.ts";
export { type CellMasker, type ColumnType, cellMasker, maskValue, OID } from "./values.ts";
