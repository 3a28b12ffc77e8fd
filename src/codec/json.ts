/**
 * Lossless JSON: numbers a double cannot hold (integers past 2^53, `-0`, decimals with more digits than a double
 * keeps, exponents out of range) are kept as `LosslessNumber`s, whose text is written back unchanged; every other
 * number is a plain `number`, so code that reads values sees what `JSON.parse` would give it.
 *
 * Loaded by the workflow bundle (through the payload converter): no Node imports.
 */
import {
  LosslessNumber,
  isLosslessNumber,
  isSafeNumber,
  parse as losslessParse,
  stringify as losslessStringify,
} from 'lossless-json';

export { LosslessNumber, isLosslessNumber };

/**
 * The numbers {@link parseJson} keeps as text. Code that serialises with plain `JSON.stringify` (Temporal's default
 * converter in an embedding worker, size estimates) gets the nearest double, as before this module existed;
 * {@link stringifyJson} writes the exact text.
 */
export class ExactNumber extends LosslessNumber {
  toJSON(): number {
    return Number(this.value);
  }
}

// A value-preserving check: `2.0` and `1e2` become plain numbers (same value), `-0` does not (JSON.stringify writes 0).
function parseNumber(text: string): number | LosslessNumber {
  return isSafeNumber(text) && !/^-0*(\.0*)?([eE].*)?$/.test(text) ? Number(text) : new ExactNumber(text);
}

/**
 * Whether `text` may hold a number that {@link parseNumber} would keep as text: 16 or more digits in a row (a dot
 * between them counts), a `-0`, or a three-digit exponent. It looks inside strings too, which only costs speed.
 */
const MAYBE_UNSAFE = /\d[\d.]{15}|-0|[eE][+-]?\d{3}/;

/** A string token (unrolled, so a long string is one cheap match) or a number token outside strings. */
const TOKENS = /"[^"\\]*(?:\\.[^"\\]*)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g;

/**
 * Parses JSON text, keeping every number's value exactly (see the module comment). Throws `SyntaxError` as
 * `JSON.parse` does.
 *
 * lossless-json's own parser reads character by character in JavaScript (20 s for a 20 MB data URI), so it is the
 * fallback only: numbers that need their text are found by one native regular-expression pass, written as marker
 * strings, and the native parser does the rest.
 */
export function parseJson(text: string): unknown {
  // Most documents (data URIs included) have no such number: one quick look, then the native parser.
  if (!MAYBE_UNSAFE.test(text)) return JSON.parse(text) as unknown;
  // A document that already holds the marker would be misread: take the slow, exact path.
  if (text.includes(ESCAPED_MARKER)) return losslessParseChecked(text);
  let unsafe = 0;
  const marked = text.replace(TOKENS, (token) => {
    if (token.charCodeAt(0) === 0x22 || typeof parseNumber(token) === 'number') return token;
    unsafe++;
    return `"${ESCAPED_MARKER}${token}"`;
  });
  let value: unknown;
  try {
    value = JSON.parse(marked);
  } catch {
    return JSON.parse(text) as unknown;
  }
  return unsafe === 0 ? value : restoreMarked(value);
}

function losslessParseChecked(text: string): unknown {
  // lossless-json's messages differ from JSON.parse's; validating first keeps one kind of error for callers.
  JSON.parse(text);
  return losslessParse(text, null, parseNumber);
}

function restoreMarked(value: unknown): unknown {
  if (typeof value === 'string') {
    return value.startsWith(MARKER) ? new ExactNumber(value.slice(MARKER.length)) : value;
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = restoreMarked(value[i]);
    return value;
  }
  if (value !== null && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    for (const key of Object.keys(record)) record[key] = restoreMarked(record[key]);
  }
  return value;
}

/**
 * `JSON.stringify` that writes each `LosslessNumber` as its original text. Everything else is exactly what
 * `JSON.stringify` writes (same escapes, same `toJSON` handling), so signatures and sizes stay predictable.
 */
export function stringifyJson(value: unknown): string {
  let found = 0;
  // The holder's own value, not `v`: JSON.stringify has already applied ExactNumber's toJSON to `v`.
  const text = JSON.stringify(value, function (this: Record<string, unknown>, key: string, v: unknown) {
    const original = this[key];
    if (!isLosslessNumber(original)) return v;
    found++;
    return `${MARKER}${(original as LosslessNumber).value}`;
  });
  if (found === 0 || text === undefined) return text;
  const parts = text.split(`"${ESCAPED_MARKER}`);
  // A string of the caller's own that starts with the marker: rare enough for the slow, exact path.
  if (parts.length - 1 !== found) return losslessStringify(value) ?? text;
  return parts.reduce((out, part) => {
    const end = part.indexOf('"');
    return out + part.slice(0, end) + part.slice(end + 1);
  });
}

// No randomness here: this runs inside workflows (payload converter), where Math.random is the workflow's own.
const MARKER = '\u0000lossless-number:';
const ESCAPED_MARKER = JSON.stringify(MARKER).slice(1, -1);

/**
 * Replaces every `LosslessNumber` with the nearest `number`, for code that must compute with values (built-in
 * models validating their input). Returns `value` itself when there is none.
 */
export function toPlainNumbers<T>(value: T): T {
  if (isLosslessNumber(value)) return Number((value as unknown as LosslessNumber).value) as T;
  if (Array.isArray(value)) {
    const mapped = value.map((item: unknown) => toPlainNumbers(item));
    return (mapped.some((item, i) => item !== value[i]) ? mapped : value) as T;
  }
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    let changed = false;
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      out[key] = toPlainNumbers(item);
      if (out[key] !== item) changed = true;
    }
    return (changed ? out : value) as T;
  }
  return value;
}
