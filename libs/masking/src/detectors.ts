// Content detectors: the last line of masking, for text that provenance cannot label (NOTICE and ERROR texts,
// computed columns whose lineage is unknown). Each pattern is anchored on what surrounds it and bounded in length
// (no nested unbounded quantifiers, so no catastrophic backtracking), and the numeric ones are checked (Luhn for
// cards, mod 97 for IBANs, invalid SSN areas, a JWT header that decodes to JSON with "alg") so that dates, phone
// numbers, UUIDs and order numbers are left alone.

/** What a detector recognises. */
export const DETECTOR_KINDS = [
  "private_key",
  "jwt",
  "aws_access_key",
  "github_token",
  "slack_token",
  "stripe_key",
  "email",
  "iban",
  "card",
  "ssn",
] as const;
export type DetectorKind = (typeof DETECTOR_KINDS)[number];

export interface Detection {
  kind: DetectorKind;
  /** UTF-16 offsets in the text: [start, end). */
  start: number;
  end: number;
}

export interface Redaction {
  /** The text with every detection replaced by `[redacted:<kind>]`. */
  text: string;
  /** Detections per kind, in DETECTOR_KINDS order, kinds found at least once. Never the matched text. */
  found: { kind: DetectorKind; count: number }[];
}

interface Detector {
  kind: DetectorKind;
  pattern: RegExp;
  /** Confirms a match and returns its span (it may be a shorter part of the match), or undefined to drop it. */
  check?: (match: string) => { start: number; end: number } | undefined;
  /** A cheap test that the text may hold a match (most texts hold none); `digits` counts its ASCII digits. */
  hint: (text: string, digits: number) => boolean;
}

const whole = (match: string) => ({ start: 0, end: match.length });

// In priority order: where two detections overlap, the earlier detector's wins.
const DETECTORS: readonly Detector[] = [
  {
    kind: "private_key",
    // A BEGIN line without its END (a truncated message) is redacted to the end of the text.
    pattern:
      /-----BEGIN (?:[A-Z0-9]{1,20} ){0,4}PRIVATE KEY-----[\s\S]*?(?:-----END (?:[A-Z0-9]{1,20} ){0,4}PRIVATE KEY-----|$)/g,
    hint: (text) => text.includes("PRIVATE KEY-----"),
  },
  {
    kind: "jwt",
    pattern: /(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{4,2048}\.[A-Za-z0-9_-]{2,16384}\.[A-Za-z0-9_-]{0,2048}/g,
    check: (match) => (jwtHeaderHasAlg(match.slice(0, match.indexOf("."))) ? whole(match) : undefined),
    hint: (text) => text.includes("eyJ"),
  },
  {
    kind: "aws_access_key",
    pattern: /(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])/g,
    hint: (text) => text.includes("AKIA") || text.includes("ASIA"),
  },
  {
    kind: "github_token",
    pattern: /(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})(?![A-Za-z0-9_])/g,
    hint: (text) => text.includes("gh"),
  },
  {
    kind: "slack_token",
    pattern: /(?<![A-Za-z0-9-])xox[abpr]-[A-Za-z0-9-]{10,250}/g,
    hint: (text) => text.includes("xox"),
  },
  {
    kind: "stripe_key",
    pattern: /(?<![A-Za-z0-9_])(?:sk|rk)_live_[A-Za-z0-9]{10,250}(?![A-Za-z0-9])/g,
    hint: (text) => text.includes("_live_"),
  },
  {
    kind: "email",
    pattern:
      /(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}(?![A-Za-z0-9-])/g,
    hint: (text) => text.includes("@"),
  },
  {
    kind: "iban",
    pattern: /(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}/g,
    check: ibanSpan,
    hint: (_text, digits) => digits >= 2,
  },
  {
    kind: "card",
    // Runs of digits with single space or dash separators, not glued to a word, a plus sign (phone) or a dash.
    pattern: /(?<![\w+-])\d(?:[ -]?\d){12,40}(?![\w-]|[ -]\d)/g,
    check: cardSpan,
    hint: (_text, digits) => digits >= 13,
  },
  {
    kind: "ssn",
    pattern: /(?<![\w-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w-])/g,
    hint: (_text, digits) => digits >= 9,
  },
];

/** Every detection in `text`, by start offset; overlaps resolved in favour of the higher-priority detector. */
export function detect(text: string): Detection[] {
  const accepted: Detection[] = [];
  const digits = countDigits(text);
  for (const detector of DETECTORS) {
    if (!detector.hint(text, digits)) continue;
    detector.pattern.lastIndex = 0;
    for (const match of text.matchAll(detector.pattern)) {
      const span = detector.check === undefined ? whole(match[0]) : detector.check(match[0]);
      if (span === undefined) continue;
      const start = match.index + span.start;
      const end = match.index + span.end;
      if (accepted.some((other) => start < other.end && other.start < end)) continue;
      accepted.push({ kind: detector.kind, start, end });
    }
  }
  return accepted.sort((a, b) => a.start - b.start);
}

function countDigits(text: string): number {
  let digits = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) digits++;
  }
  return digits;
}

/** Replaces everything the detectors recognise in `text` by `[redacted:<kind>]`. */
export function redactText(text: string): Redaction {
  const detections = detect(text);
  if (detections.length === 0) return { text, found: [] };
  let out = "";
  let at = 0;
  const counts = new Map<DetectorKind, number>();
  for (const { kind, start, end } of detections) {
    out += `${text.slice(at, start)}[redacted:${kind}]`;
    at = end;
    counts.set(kind, (counts.get(kind) ?? 0) + 1);
  }
  out += text.slice(at);
  const found = DETECTOR_KINDS.filter((kind) => counts.has(kind)).map((kind) => ({ kind, count: counts.get(kind)! }));
  return { text: out, found };
}

/**
 * Redacts inside a JSON text and keeps it valid JSON: string values are redacted as text, and a number that a
 * detector recognises (a card number stored as a JSON number) becomes the string `"[redacted:card]"`. Text that is
 * not JSON is redacted as plain text and returned as one JSON string.
 */
export function redactJsonText(json: string): { text: string; changed: boolean; found: Redaction["found"] } {
  const counts = new Map<DetectorKind, number>();
  const redact = (text: string): string | undefined => {
    const result = redactText(text);
    if (result.found.length === 0) return undefined;
    for (const { kind, count } of result.found) counts.set(kind, (counts.get(kind) ?? 0) + count);
    return result.text;
  };
  let out = "";
  let copied = 0;
  let i = 0;
  while (i < json.length) {
    const c = json.charCodeAt(i);
    if (c === 0x22) {
      const end = stringEnd(json, i);
      if (end < 0) return asJsonString(json, redact);
      let value: string;
      try {
        value = JSON.parse(json.slice(i, end)) as string;
      } catch {
        return asJsonString(json, redact);
      }
      const redacted = redact(value);
      if (redacted !== undefined) {
        out += `${json.slice(copied, i)}${JSON.stringify(redacted)}`;
        copied = end;
      }
      i = end;
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      let end = i + 1;
      while (end < json.length && /[0-9.eE+-]/.test(json[end]!)) end++;
      const redacted = redact(json.slice(i, end));
      if (redacted !== undefined) {
        out += `${json.slice(copied, i)}${JSON.stringify(redacted)}`;
        copied = end;
      }
      i = end;
    } else i++;
  }
  if (counts.size === 0) return { text: json, changed: false, found: [] };
  out += json.slice(copied);
  return { text: out, changed: true, found: foundOf(counts) };
}

function asJsonString(
  text: string,
  redact: (text: string) => string | undefined,
): { text: string; changed: boolean; found: Redaction["found"] } {
  const result = redactText(text);
  if (result.found.length === 0) return { text, changed: false, found: [] };
  redact(text);
  return { text: JSON.stringify(result.text), changed: true, found: result.found };
}

/** The index after the closing quote of the JSON string starting at `start`, or -1. */
function stringEnd(json: string, start: number): number {
  for (let i = start + 1; i < json.length; i++) {
    const c = json.charCodeAt(i);
    if (c === 0x5c) i++;
    else if (c === 0x22) return i + 1;
  }
  return -1;
}

function foundOf(counts: ReadonlyMap<DetectorKind, number>): Redaction["found"] {
  return DETECTOR_KINDS.filter((kind) => counts.has(kind)).map((kind) => ({ kind, count: counts.get(kind)! }));
}

// --- checks -----------------------------------------------------------------------------------------------------

function jwtHeaderHasAlg(segment: string): boolean {
  try {
    const base64 = segment.replace(/-/g, "+").replace(/_/g, "/");
    const header: unknown = JSON.parse(atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4)));
    return header !== null && typeof header === "object" && typeof (header as { alg?: unknown }).alg === "string";
  } catch {
    return false;
  }
}

/** True when the digits pass the Luhn check. */
export function luhn(digits: string): boolean {
  let sum = 0;
  for (let i = digits.length - 1, double = false; i >= 0; i--, double = !double) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

/**
 * A card number inside a run of digits: the whole run when it has 13 to 19 digits, else (for a run with separators,
 * such as a number followed by its CVV) the longest leading groups that make one. Cards start with 2 to 6 (Visa,
 * Mastercard, Amex, Discover, JCB, Diners, UnionPay, Maestro); a run shaped like a UUID (8-4-4-4-12) is none.
 */
function cardSpan(run: string): { start: number; end: number } | undefined {
  const first = run.charCodeAt(0);
  if (first < 50 || first > 54) return undefined;
  const groups = [...run.matchAll(/\d+/g)].map((group) => ({ digits: group[0], end: group.index + group[0].length }));
  if (groups.map((group) => group.digits.length).join("-") === "8-4-4-4-12") return undefined;
  const digits = groups.map((group) => group.digits).join("");
  if (digits.length >= 13 && digits.length <= 19 && luhn(digits)) return whole(run);
  let prefix = digits;
  for (let count = groups.length - 1; count >= 1; count--) {
    prefix = prefix.slice(0, prefix.length - groups[count]!.digits.length);
    if (prefix.length < 13) return undefined;
    if (prefix.length <= 19 && luhn(prefix)) return { start: 0, end: groups[count - 1]!.end };
  }
  return undefined;
}

/** IBAN lengths by country (SWIFT IBAN registry). */
const IBAN_LENGTHS: Readonly<Record<string, number>> = Object.fromEntries(
  (
    "AD24 AE23 AL28 AT20 AZ28 BA20 BE16 BG22 BH22 BI27 BR29 BY28 CH21 CR22 CY28 CZ24 DE22 DJ27 DK18 DO28 EE20 EG29 " +
    "ES24 FI18 FK18 FO18 FR27 GB22 GE22 GI23 GL18 GR27 GT28 HR21 HU28 IE22 IL23 IQ23 IS26 IT27 JO30 KW30 KZ20 LB28 " +
    "LC32 LI21 LT20 LU20 LV21 LY25 MC27 MD24 ME22 MK19 MN20 MR27 MT31 MU30 NI28 NL18 NO15 OM23 PK24 PL28 PS29 PT25 " +
    "QA29 RO24 RS22 RU33 SA24 SC31 SD18 SE24 SI19 SK24 SM27 SO23 ST25 SV28 TL23 TN24 TR26 UA29 VA22 VG24 XK20"
  )
    .split(" ")
    .map((entry) => [entry.slice(0, 2), Number(entry.slice(2))]),
);

/** The IBAN at the start of a candidate (which may run on into the next word), when its check digits hold. */
function ibanSpan(candidate: string): { start: number; end: number } | undefined {
  const length = IBAN_LENGTHS[candidate.slice(0, 2)];
  if (length === undefined) return undefined;
  let compact = "";
  let end = 0;
  while (end < candidate.length && compact.length < length) {
    if (candidate[end] !== " ") compact += candidate[end];
    end++;
  }
  if (compact.length !== length) return undefined;
  // The IBAN must end there: not in the middle of a longer run of letters and digits.
  if (end < candidate.length && candidate[end] !== " ") return undefined;
  return mod97(compact.slice(4) + compact.slice(0, 4)) === 1 ? { start: 0, end } : undefined;
}

function mod97(text: string): number {
  let rest = 0;
  for (const char of text) {
    const code = char.charCodeAt(0);
    const value = code >= 65 ? code - 55 : code - 48;
    rest = (value >= 10 ? rest * 100 + value : rest * 10 + value) % 97;
  }
  return rest;
}
