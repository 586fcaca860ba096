import { RootFields, ValueKind, decodeUtf8 } from './json-root-fields.ts';
import type { Utf8Decoder } from './json-root-fields.ts';
import type { AsciiText } from './hyperloglog.ts';

/**
 * A user-tracker frame is any JSON object; only its root-level `uid` (a non-empty string)
 * and `ts` (unix seconds: a JSON number or a string holding one) count. Keys of the same
 * names inside nested values are ignored; when a root key repeats, the last one wins (as
 * with JSON.parse).
 */

/** Why a frame could not be read. Stable codes: they go into dead-letter headers. */
export type FrameProblem = 'not-json' | 'not-an-object' | 'missing-uid' | 'bad-uid' | 'missing-ts' | 'bad-ts';

/** Largest |ts| a Date can represent (±8.64e15 ms). */
const MAX_SECONDS = 8.64e12;
const NUMBER_TEXT = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/;

const UID = 0;
const TS = 1;

/** Reads frames one after another; the fields of the last read are on the instance. */
export class UserFrameReader {
  /**
   * When the last frame's uid is plain ASCII without escapes (the usual case), its bytes in
   * the frame; otherwise null. Counting from the bytes spares making a string per frame.
   */
  uidAscii: AsciiText | null = null;
  /** Root `ts` of the last frame read, in seconds (may be fractional or negative). */
  ts = Number.NaN;
  problem: FrameProblem | null = null;
  /** Human detail of the problem (e.g. "unexpected character at byte 17"). */
  detail = '';
  readonly #fields: RootFields;
  readonly #ascii: { bytes: Uint8Array; start: number; end: number } = { bytes: new Uint8Array(0), start: 0, end: 0 };
  #uid: string | null = '';

  /** `validateStrings`: see RootFields (off trades string-content checks for speed). */
  constructor(options: { decode?: Utf8Decoder; validateStrings?: boolean } = {}) {
    this.#fields = new RootFields(['uid', 'ts'], { decode: options.decode ?? decodeUtf8, validateStrings: options.validateStrings ?? true });
  }

  /** Reads bytes [start, end); returns false (and sets `problem`) when the frame does not count. */
  read(bytes: Uint8Array, start = 0, end = bytes.length): boolean {
    const fields = this.#fields;
    if (!fields.scan(bytes, start, end)) return this.#reject('not-json', `${fields.error} at byte ${fields.errorAt - start}`);
    if (fields.rootKind !== ValueKind.OBJECT) return this.#reject('not-an-object', 'the frame is not a JSON object');

    const uidKind = fields.kinds[UID];
    if (uidKind === ValueKind.ABSENT) return this.#reject('missing-uid', 'no root-level uid');
    if (uidKind !== ValueKind.STRING && uidKind !== ValueKind.ESCAPED_STRING) return this.#reject('bad-uid', 'uid is not a string');
    const uidStart = fields.starts[UID];
    const uidEnd = fields.ends[UID];
    let ascii = uidKind === ValueKind.STRING;
    if (ascii) for (let i = uidStart; i < uidEnd; i++) if (bytes[i] > 0x7f) ascii = false;
    let uid: string | null = null;
    if (ascii) {
      if (uidEnd === uidStart) return this.#reject('bad-uid', 'uid is empty');
    } else {
      uid = fields.string(bytes, UID)!;
      if (uid.length === 0) return this.#reject('bad-uid', 'uid is empty');
    }

    const tsKind = fields.kinds[TS];
    let ts: number;
    if (tsKind === ValueKind.NUMBER) {
      ts = parseNumber(bytes, fields.starts[TS], fields.ends[TS]);
    } else if (tsKind === ValueKind.STRING) {
      ts = parseNumber(bytes, fields.starts[TS], fields.ends[TS]);
    } else if (tsKind === ValueKind.ESCAPED_STRING) {
      const text = fields.string(bytes, TS)!;
      ts = NUMBER_TEXT.test(text) ? Number(text) : Number.NaN;
    } else if (tsKind === ValueKind.ABSENT) {
      return this.#reject('missing-ts', 'no root-level ts');
    } else {
      return this.#reject('bad-ts', 'ts is neither a number nor a numeric string');
    }
    if (!(Math.abs(ts) <= MAX_SECONDS)) return this.#reject('bad-ts', 'ts is not a number of unix seconds in the range of a date');
    if (ascii) {
      const range = this.#ascii;
      range.bytes = bytes;
      range.start = uidStart;
      range.end = uidEnd;
      this.uidAscii = range;
    } else {
      this.uidAscii = null;
    }
    this.#uid = uid;
    this.ts = ts;
    this.problem = null;
    this.detail = '';
    return true;
  }

  /** Root `uid` of the last frame read ('' when it was rejected). */
  get uid(): string {
    if (this.#uid === null) {
      const { bytes, start, end } = this.#ascii;
      let text = '';
      for (let i = start; i < end; i++) text += String.fromCharCode(bytes[i]);
      this.#uid = text;
    }
    return this.#uid;
  }

  #reject(problem: FrameProblem, detail: string): false {
    this.problem = problem;
    this.detail = detail;
    this.uidAscii = null;
    this.#uid = '';
    this.ts = Number.NaN;
    return false;
  }
}

/**
 * Parses a JSON number (or what should be one) in bytes [start, end). Plain integers of up
 * to 15 digits, the usual case, are summed digit by digit; anything else goes through
 * Number() after a grammar check. NaN when the text is not a JSON number.
 */
function parseNumber(bytes: Uint8Array, start: number, end: number): number {
  let i = start;
  const negative = bytes[i] === 0x2d;
  if (negative) i++;
  if (end - i >= 1 && end - i <= 15 && (bytes[i] !== 0x30 || end - i === 1)) {
    let value = 0;
    for (; i < end; i++) {
      const d = bytes[i] - 0x30;
      if (d < 0 || d > 9) break;
      value = value * 10 + d;
    }
    if (i === end) return negative ? -value : value;
  }
  const text = rawText(bytes, start, end);
  return NUMBER_TEXT.test(text) ? Number(text) : Number.NaN;
}

function rawText(bytes: Uint8Array, start: number, end: number): string {
  let text = '';
  for (let i = start; i < end; i++) text += String.fromCharCode(bytes[i]);
  return text;
}
