/** One problem found in a rules document: where (key, rule) and why. Never quotes a value beyond a rule's name. */
export interface RulesIssue {
  /** Path of the offending key, e.g. `rules[2].match.classes[0]`; "" for the document as a whole. */
  key: string;
  /** The rule the key belongs to, when it belongs to one. */
  rule?: { index: number; name?: string };
  reason: string;
}

/** Invalid rules: every issue found, the first one in the message. */
export class RulesError extends Error {
  override readonly name = "RulesError";
  readonly issues: readonly RulesIssue[];
  /** The file (or other source) the rules came from, when known. */
  readonly source: string | undefined;
  constructor(issues: readonly RulesIssue[], options?: { source?: string; cause?: unknown }) {
    super(describe(issues, options?.source), options?.cause === undefined ? undefined : { cause: options.cause });
    this.issues = issues;
    this.source = options?.source;
  }

  /** The first issue's key. */
  get key(): string {
    return this.issues[0]?.key ?? "";
  }

  /** The first issue's reason. */
  get reason(): string {
    return this.issues[0]?.reason ?? "invalid rules";
  }
}

function describe(issues: readonly RulesIssue[], source: string | undefined): string {
  const where = source === undefined ? "" : `${source}: `;
  const first = issues[0];
  if (first === undefined) return `${where}invalid rules`;
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : "";
  return `${where}${formatIssue(first)}${more}`;
}

/** `rules[2] "analysts-write": match.classes[0]: Invalid option: ...` */
export function formatIssue(issue: RulesIssue): string {
  if (issue.rule === undefined) return issue.key === "" ? issue.reason : `${issue.key}: ${issue.reason}`;
  const prefix = `rules[${issue.rule.index}]`;
  const name = issue.rule.name === undefined ? "" : ` ${JSON.stringify(issue.rule.name)}`;
  const rest = issue.key.startsWith(prefix) ? issue.key.slice(prefix.length).replace(/^\./, "") : issue.key;
  return `${prefix}${name}${rest === "" ? "" : `: ${rest}`}: ${issue.reason}`;
}
