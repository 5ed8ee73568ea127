import { fingerprintSync, hasSqlDetails, loadModule, type ParseResult, parseSync, type RawStmt } from "libpg-query";
import { maxClass, sortClasses } from "./classes.ts";
import { SqlAnalysisError } from "./errors.ts";
import { type Facts, mergeFacts, newFacts, type Session } from "./facts.ts";
import { statementNode } from "./statements.ts";
import type { Analysis, AnalyzeOptions, StatementAnalysis, StatementFlags } from "./types.ts";
import { nodeTag } from "./walk.ts";

let loading: Promise<void> | undefined;
let ready = false;

/** Loads PostgreSQL's parser (WebAssembly) once; analyze() may be called when this has resolved. */
export function initSqlAnalysis(): Promise<void> {
  loading ??= loadModule().then(
    () => {
      ready = true;
    },
    (error: unknown) => {
      loading = undefined;
      throw error;
    },
  );
  return loading;
}

/**
 * Parses `sql` with PostgreSQL's parser and says what each of its statements does. Synchronous once
 * initSqlAnalysis() has resolved. Throws SqlAnalysisError for anything that cannot be parsed or analysed.
 */
export function analyze(sql: string, options: AnalyzeOptions = {}): Analysis {
  if (!ready) throw new Error("analyze() called before initSqlAnalysis() resolved");
  const nul = sql.indexOf("\u0000");
  if (nul >= 0) {
    throw new SqlAnalysisError("22021", 'invalid byte sequence for encoding "UTF8": 0x00', codePoints(sql, nul) + 1);
  }
  const raws = sql === "" ? [] : (parse(sql).stmts ?? []);
  const session = createSession(options);
  const source = sourceText(sql);
  const fingerprints = options.fingerprints ?? true;
  const statements = raws.map((raw) => analyzeStatement(raw, source, session, fingerprints));
  const fingerprint =
    !fingerprints || statements.length === 0
      ? ""
      : statements.length === 1
        ? statements[0]!.fingerprint
        : fingerprintOf(sql);
  return {
    statements,
    class: maxClass(statements.map((s) => s.class)),
    fingerprint,
    cacheKey: cacheKey(fingerprint, statements),
  };
}

function parse(sql: string): ParseResult {
  try {
    return parseSync(sql);
  } catch (error) {
    throw parseError(error, sql);
  }
}

function analyzeStatement(
  raw: RawStmt,
  source: SourceText,
  session: Session,
  fingerprints: boolean,
): StatementAnalysis {
  const start = raw.stmt_location ?? 0;
  const text = source.slice(start, raw.stmt_len === undefined || raw.stmt_len === 0 ? undefined : start + raw.stmt_len);
  const facts = newFacts();
  try {
    statementNode(raw.stmt, { facts, session }, undefined);
  } catch (error) {
    if (error instanceof RangeError) {
      throw new SqlAnalysisError("54001", "statement is nested too deeply to analyse", undefined, { cause: error });
    }
    throw error;
  }
  return finish(raw.stmt === undefined ? "" : (nodeTag(raw.stmt) ?? ""), facts, text, fingerprints);
}

function finish(kind: string, facts: Facts, text: string, fingerprints: boolean): StatementAnalysis {
  if (facts.reads.size > 0) facts.classes.add("read");
  const classes = sortClasses(facts.classes.size === 0 ? ["read"] : facts.classes);
  const flags: StatementFlags = { ...facts.flags };
  if (facts.protectedSettings.size > 0) flags.protectedSetting = [...facts.protectedSettings].sort().join(",");
  if (facts.unknownFunctions.size > 0) flags.unknownFunctions = [...facts.unknownFunctions].sort();
  if (facts.hidden.size > 0) flags.hiddenEffects = [...facts.hidden].sort();
  if (facts.unresolved.size > 0) flags.unresolved = [...facts.unresolved].sort();
  return {
    class: maxClass(classes),
    classes,
    kind,
    reads: [...facts.reads].sort(),
    writes: [...facts.writes].sort(),
    columns: [...facts.columns].sort(),
    functions: [...facts.functions].sort(),
    fingerprint: fingerprints ? fingerprintOf(text) : "",
    text,
    flags,
  };
}

/** The fingerprint plus every fact that a fingerprint does not pin down (see Analysis.cacheKey). */
function cacheKey(fingerprint: string, statements: readonly StatementAnalysis[]): string {
  const facts = statements.map((s) => [s.classes, s.reads, s.writes, s.columns, s.functions, s.flags]);
  return `${fingerprint}:${JSON.stringify(facts)}`;
}

/** libpg-query's fingerprint of a SQL string (constants removed); throws SqlAnalysisError when it cannot. */
export function fingerprintOf(sql: string): string {
  let fingerprint: string;
  try {
    fingerprint = fingerprintSync(sql);
  } catch (error) {
    throw parseError(error, sql);
  }
  // libpg-query returns some failures as the result string instead of throwing.
  if (!isHex(fingerprint)) throw new SqlAnalysisError("XX000", `could not fingerprint statement: ${fingerprint}`);
  return fingerprint;
}

function isHex(text: string): boolean {
  if (text.length === 0) return false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

function parseError(error: unknown, sql: string): SqlAnalysisError {
  if (error instanceof RangeError) {
    return new SqlAnalysisError("54001", "statement is nested too deeply to analyse", undefined, { cause: error });
  }
  if (!hasSqlDetails(error)) {
    const message = error instanceof Error ? error.message : String(error);
    return new SqlAnalysisError("XX000", `could not parse statement: ${message}`, undefined, { cause: error });
  }
  const code = error.message === "stack depth limit exceeded" ? "54001" : "42601";
  return new SqlAnalysisError(code, error.message, errorPosition(error.sqlDetails?.cursorPosition ?? 0, sql), {
    cause: error,
  });
}

/**
 * PostgreSQL's 1-based character position of a parse error. libpg-query reports it 0-based and maps "no position"
 * to 0 as well, so a 0 is told apart by parsing again behind one space: a real first-character error moves to 1.
 */
function errorPosition(zeroBased: number, sql: string): number | undefined {
  if (zeroBased > 0) return zeroBased + 1;
  try {
    parseSync(` ${sql}`);
  } catch (again) {
    if (hasSqlDetails(again) && again.sqlDetails?.cursorPosition === 1) return 1;
  }
  return undefined;
}

/** Statement text by the parser's byte offsets (UTF-8), without surrounding whitespace. */
interface SourceText {
  slice(start: number, end: number | undefined): string;
}

function sourceText(sql: string): SourceText {
  if (isAscii(sql)) return { slice: (start, end) => sql.slice(start, end).trim() };
  const bytes = new TextEncoder().encode(sql);
  const decoder = new TextDecoder();
  return { slice: (start, end) => decoder.decode(bytes.subarray(start, end)).trim() };
}

function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 127) return false;
  return true;
}

/** Code points before UTF-16 index `index` (PostgreSQL counts characters, not UTF-16 units). */
function codePoints(text: string, index: number): number {
  return Array.from(text.slice(0, index)).length;
}

/** Prepared statements known to this analysis: PREPAREd earlier in the string, else options.prepared. */
function createSession(options: AnalyzeOptions): Session {
  const local = new Map<string, Facts>();
  const forgotten = new Set<string>();
  let forgetAll = false;
  return {
    catalog: options.catalog,
    resolve(name) {
      const body = local.get(name);
      if (body !== undefined) return body;
      if (forgetAll || forgotten.has(name)) return undefined;
      const text = options.prepared?.get(name);
      if (text === undefined) return undefined;
      const resolved = preparedFacts(text, options);
      if (resolved !== undefined) local.set(name, resolved);
      return resolved;
    },
    prepare(name, body) {
      local.set(name, body);
    },
    deallocate(name) {
      if (name === undefined) {
        local.clear();
        forgetAll = true;
      } else {
        local.delete(name);
        forgotten.add(name);
      }
    },
  };
}

/** What a prepared statement's text does; undefined when it cannot be analysed (EXECUTE then fails closed). */
function preparedFacts(text: string, options: AnalyzeOptions): Facts | undefined {
  let raws: RawStmt[];
  try {
    raws = parseSync(text).stmts ?? [];
  } catch {
    return undefined;
  }
  if (raws.length === 0) return undefined;
  // No prepared map inside: a prepared text that itself says EXECUTE resolves to "unknown", never loops.
  const session = createSession({ ...(options.catalog === undefined ? {} : { catalog: options.catalog }) });
  const facts = newFacts();
  for (const raw of raws) {
    const one = newFacts();
    statementNode(raw.stmt, { facts: one, session }, undefined);
    mergeFacts(one, facts);
  }
  return facts;
}
