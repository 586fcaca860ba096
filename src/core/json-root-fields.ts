/**
 * A strict JSON scanner over UTF-8 bytes that validates a whole document in one pass and
 * captures the value spans of a few root-level keys, without building any object.
 *
 * Why: decoding a 2 KB unicode-heavy frame with JSON.parse costs ~50 µs; a pipeline that
 * needs two root fields only has to find them. The scanner accepts exactly what JSON.parse
 * accepts (RFC 8259: no trailing commas, no comments, no leading zeros, no raw control
 * characters in strings, only whitespace around the value) and follows JSON.parse on
 * duplicate keys: the last occurrence wins. Keys of the same name in nested objects or
 * arrays are skipped, whatever their depth. Escaped keys ("u\u0069d") match their decoded
 * name. Bytes >= 0x80 are taken as string content without checking UTF-8: callers that
 * forward raw bytes check that with a native validator (node:buffer isUtf8).
 */

/** What a captured value is. */
export const ValueKind = {
  ABSENT: 0,
  STRING: 1,
  /** A string that contains escapes: decode it with `string()`. */
  ESCAPED_STRING: 2,
  NUMBER: 3,
  TRUE: 4,
  FALSE: 5,
  NULL: 6,
  OBJECT: 7,
  ARRAY: 8,
} as const;
export type ValueKind = (typeof ValueKind)[keyof typeof ValueKind];

/** Decodes bytes [start, end) as UTF-8 (injected so an adapter can pass a faster native one). */
export type Utf8Decoder = (bytes: Uint8Array, start: number, end: number) => string;

const textDecoder = new TextDecoder();
export const decodeUtf8: Utf8Decoder = (bytes, start, end) => textDecoder.decode(bytes.subarray(start, end));

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const MINUS = 0x2d;

/** 1 for bytes that end a run of plain string content: quote, backslash, control characters. */
const STRING_STOP = new Uint8Array(256);
for (let c = 0; c < 0x20; c++) STRING_STOP[c] = 1;
STRING_STOP[QUOTE] = 1;
STRING_STOP[BACKSLASH] = 1;

/** Bytes that matter when skipping a nested value without validating it: quotes and brackets. */
const NESTED_STOP = new Uint8Array(256);
for (const c of [0x22, 0x7b, 0x7d, 0x5b, 0x5d]) NESTED_STOP[c] = 1;

const WHITESPACE = new Uint8Array(256);
for (const c of [0x20, 0x09, 0x0a, 0x0d]) WHITESPACE[c] = 1;

/** Characters allowed after a backslash (besides u). */
const SIMPLE_ESCAPE = new Uint8Array(256);
for (const c of '"\\/bfnrt') SIMPLE_ESCAPE[c.charCodeAt(0)] = 1;

const HEX = new Uint8Array(256);
for (const c of '0123456789abcdefABCDEF') HEX[c.charCodeAt(0)] = 1;

const isDigit = (c: number) => c >= 0x30 && c <= 0x39;

function hasByte(b: Uint8Array, start: number, end: number, byte: number): boolean {
  for (let i = start; i < end; i++) if (b[i] === byte) return true;
  return false;
}

const LITERALS: ReadonlyArray<readonly [number, Uint8Array, ValueKind]> = [
  [0x74, new TextEncoder().encode('true'), ValueKind.TRUE],
  [0x66, new TextEncoder().encode('false'), ValueKind.FALSE],
  [0x6e, new TextEncoder().encode('null'), ValueKind.NULL],
];

/**
 * Scans documents and remembers, for each wanted root key, the kind and byte span of its
 * (last) value. String spans exclude the quotes. One instance is reused for every
 * document: it allocates nothing per scan unless a key is escaped.
 */
export class RootFields {
  readonly names: readonly string[];
  readonly kinds: Uint8Array;
  readonly starts: Int32Array;
  readonly ends: Int32Array;
  /** Kind of the root value of the last scan (OBJECT for the documents that have fields). */
  rootKind: ValueKind = ValueKind.ABSENT;
  /** Byte offset of the first problem, or -1 when the last scan was valid JSON. */
  errorAt = -1;
  /** One-line description of the problem. */
  error = '';
  readonly #keys: Uint8Array[];
  readonly #decode: Utf8Decoder;
  #stack = new Uint8Array(64);

  readonly #validateStrings: boolean;

  /**
   * `validateStrings: false` trades validation for speed, about twice as fast on text-heavy
   * documents: string contents are skipped with a native byte search (raw control
   * characters or bad escapes inside strings are not noticed), and nested values nobody
   * asked for are only followed through their strings and brackets (a bad number or a
   * missing comma inside them is not noticed either). The root level is always checked in
   * full, and for every valid document the answer equals JSON.parse's.
   */
  constructor(names: readonly string[], options: { decode?: Utf8Decoder; validateStrings?: boolean } = {}) {
    this.names = names;
    this.#validateStrings = options.validateStrings ?? true;
    this.#keys = names.map((n) => new TextEncoder().encode(n));
    this.kinds = new Uint8Array(names.length);
    this.starts = new Int32Array(names.length);
    this.ends = new Int32Array(names.length);
    this.#decode = options.decode ?? decodeUtf8;
  }

  /** Scans bytes [start, end). Returns true when they are one valid JSON value. */
  scan(bytes: Uint8Array, start = 0, end = bytes.length): boolean {
    this.kinds.fill(0);
    this.rootKind = ValueKind.ABSENT;
    this.errorAt = -1;
    this.error = '';
    const b = bytes;
    if (this.#validateStrings) this.#wordsFor(b);
    let stack = this.#stack;
    let depth = 0;
    let i = start;
    // Wanted-field index of the root key just read (-1: none, not wanted, or not at the root).
    let field = -1;
    // The root field whose value is being scanned, and where that value started.
    let capture = -1;
    let captureStart = 0;
    while (i < end && WHITESPACE[b[i]]) i++;
    if (i >= end) return this.#fail(i, 'empty input');

    value: for (;;) {
      // A value starts at i.
      if (i >= end) return this.#fail(i, 'unexpected end of input');
      let c = b[i];
      if (depth === 1 && field >= 0) {
        capture = field;
        captureStart = i;
      }
      field = -1;
      let kind: ValueKind;
      if (c === QUOTE) {
        if (this.#validateStrings || capture >= 0) {
          i = this.#skipString(b, i + 1, end);
          kind = this.#escaped ? ValueKind.ESCAPED_STRING : ValueKind.STRING;
        } else {
          i = this.#skipStringFast(b, i + 1, end);
          kind = ValueKind.STRING;
        }
        if (i < 0) return false;
      } else if ((c === OPEN_OBJECT || c === OPEN_ARRAY) && depth > 0 && !this.#validateStrings && capture < 0) {
        // A nested value nobody asked for: only brackets and strings are followed.
        i = this.#skipNested(b, i, end);
        if (i < 0) return false;
        kind = c === OPEN_OBJECT ? ValueKind.OBJECT : ValueKind.ARRAY;
      } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
        if (depth === stack.length) {
          const grown = new Uint8Array(stack.length * 2);
          grown.set(stack);
          this.#stack = stack = grown;
        }
        stack[depth++] = c;
        i++;
        while (i < end && WHITESPACE[b[i]]) i++;
        if (i >= end) return this.#fail(i, 'unexpected end of input');
        if (c === OPEN_ARRAY) {
          if (b[i] !== CLOSE_ARRAY) continue value;
        } else if (b[i] === QUOTE) {
          i = this.#key(b, i, end, depth);
          if (i < 0) return false;
          field = this.#keyField;
          continue value;
        } else if (b[i] !== CLOSE_OBJECT) {
          return this.#fail(i, 'expected a key or }');
        }
        // An empty container.
        depth--;
        i++;
        kind = c === OPEN_OBJECT ? ValueKind.OBJECT : ValueKind.ARRAY;
      } else if (c === MINUS || isDigit(c)) {
        i = this.#skipNumber(b, i, end);
        if (i < 0) return false;
        kind = ValueKind.NUMBER;
      } else {
        i = this.#skipLiteral(b, i, end);
        if (i < 0) return false;
        kind = this.#literal;
      }

      // A value of `kind` ended just before i; for containers, i is after the closing bracket.
      for (;;) {
        if (depth === 0) {
          this.rootKind = kind;
          return this.#end(b, i, end);
        }
        if (depth === 1 && capture >= 0) {
          const quoted = kind === ValueKind.STRING || kind === ValueKind.ESCAPED_STRING;
          this.kinds[capture] = kind;
          this.starts[capture] = quoted ? captureStart + 1 : captureStart;
          this.ends[capture] = quoted ? i - 1 : i;
          capture = -1;
        }
        while (i < end && WHITESPACE[b[i]]) i++;
        if (i >= end) return this.#fail(i, 'unexpected end of input');
        c = b[i];
        const container = stack[depth - 1];
        if (c === COMMA) {
          i++;
          while (i < end && WHITESPACE[b[i]]) i++;
          if (container === OPEN_OBJECT) {
            if (i >= end || b[i] !== QUOTE) return this.#fail(i, 'expected a key');
            i = this.#key(b, i, end, depth);
            if (i < 0) return false;
            field = this.#keyField;
          }
          continue value;
        }
        if ((c === CLOSE_OBJECT && container === OPEN_OBJECT) || (c === CLOSE_ARRAY && container === OPEN_ARRAY)) {
          depth--;
          i++;
          kind = c === CLOSE_OBJECT ? ValueKind.OBJECT : ValueKind.ARRAY;
          continue;
        }
        return this.#fail(i, container === OPEN_OBJECT ? 'expected , or }' : 'expected , or ]');
      }
    }
  }

  /** Set by #skipString: whether the string just skipped holds escapes. */
  #escaped = false;
  /** Set by #key: the wanted-field index of the key just read (-1 when not wanted or not at the root). */
  #keyField = -1;
  /** Set by #skipLiteral. */
  #literal: ValueKind = ValueKind.NULL;

  /** Reads `"key"` and the colon after it from the opening quote; returns the index of the value. */
  #key(b: Uint8Array, i: number, end: number, depth: number): number {
    const wanted = depth === 1 && this.#keys.length > 0;
    const after = this.#validateStrings ? this.#skipString(b, i + 1, end) : this.#skipStringFast(b, i + 1, end);
    if (after < 0) return -1;
    this.#keyField = wanted ? this.#match(b, i + 1, after - 1, this.#validateStrings ? this.#escaped : hasByte(b, i + 1, after - 1, BACKSLASH)) : -1;
    if (this.#keyField === -2) return this.#failAt(i + 1, 'bad escape in key');
    let j = after;
    while (j < end && WHITESPACE[b[j]]) j++;
    if (j >= end || b[j] !== COLON) return this.#failAt(j, 'expected :');
    j++;
    while (j < end && WHITESPACE[b[j]]) j++;
    return j;
  }

  #match(b: Uint8Array, start: number, end: number, escaped: boolean): number {
    if (escaped) {
      try {
        return this.names.indexOf(JSON.parse(`"${this.#decode(b, start, end)}"`) as string);
      } catch {
        return -2; // only reachable without string validation
      }
    }
    const keys = this.#keys;
    const length = end - start;
    outer: for (let k = 0; k < keys.length; k++) {
      const key = keys[k];
      if (key.length !== length) continue;
      for (let j = 0; j < length; j++) if (b[start + j] !== key[j]) continue outer;
      return k;
    }
    return -1;
  }

  /**
   * Skips string content from just after the opening quote; returns the index after the
   * closing quote. Long runs of plain content are checked four bytes at a time (SWAR: one
   * word tells whether it holds a quote, a backslash or a control character), then the
   * byte that stopped the run is looked at alone.
   */
  #skipString(b: Uint8Array, i: number, end: number): number {
    this.#escaped = false;
    const words = this.#words;
    const wordStart = this.#wordStart;
    for (;;) {
      if (words !== null && i >= wordStart) {
        while (i < end && ((i - wordStart) & 3) !== 0 && STRING_STOP[b[i]] === 0) i++;
        if (((i - wordStart) & 3) === 0) {
          let w = (i - wordStart) >> 2;
          const last = Math.min(words.length, (end - wordStart) >> 2);
          while (w < last) {
            const x = words[w];
            const quote = x ^ 0x22222222;
            const backslash = x ^ 0x5c5c5c5c;
            if ((((x - 0x20202020) & ~x) | ((quote - 0x01010101) & ~quote) | ((backslash - 0x01010101) & ~backslash)) & 0x80808080) break;
            w++;
          }
          i = wordStart + (w << 2);
        }
      }
      while (i < end && STRING_STOP[b[i]] === 0) i++;
      if (i >= end) return this.#failAt(i, 'unterminated string');
      const c = b[i];
      if (c === QUOTE) return i + 1;
      if (c !== BACKSLASH) return this.#failAt(i, 'control character in string');
      this.#escaped = true;
      if (i + 1 >= end) return this.#failAt(i, 'unterminated string');
      const n = b[i + 1];
      if (SIMPLE_ESCAPE[n]) {
        i += 2;
      } else if (n === 0x75 && i + 5 < end && HEX[b[i + 2]] && HEX[b[i + 3]] && HEX[b[i + 4]] && HEX[b[i + 5]]) {
        i += 6;
      } else {
        return this.#failAt(i, 'bad escape in string');
      }
    }
  }

  /** A 32-bit view of the aligned part of the last buffer scanned (kept while it is scanned again). */
  #words: Uint32Array | null = null;
  /** Index in that buffer of the first aligned byte (word 0). */
  #wordStart = 0;
  #wordsOf: Uint8Array | null = null;

  #wordsFor(b: Uint8Array): void {
    if (b === this.#wordsOf) return;
    this.#wordsOf = b;
    const first = (b.byteOffset + 3) & ~3;
    const count = (((b.byteOffset + b.length) & ~3) - first) >> 2;
    this.#words = count >= 16 ? new Uint32Array(b.buffer, first, count) : null;
    this.#wordStart = first - b.byteOffset;
  }

  /**
   * Finds the closing quote with a native search (Buffer#indexOf for Buffers) and checks
   * the run of backslashes before it; does not look at the content in between.
   */
  #skipStringFast(b: Uint8Array, i: number, end: number): number {
    // Short strings (keys, codes) are quicker to walk than to search.
    const shortEnd = Math.min(end, i + 16);
    for (; i < shortEnd; i++) {
      const c = b[i];
      if (c === QUOTE) return i + 1;
      if (c === BACKSLASH) break;
    }
    for (;;) {
      const quote = b.indexOf(QUOTE, i);
      if (quote < 0 || quote >= end) return this.#failAt(end, 'unterminated string');
      let k = quote - 1;
      while (b[k] === BACKSLASH) k--;
      if (((quote - 1 - k) & 1) === 0) return quote + 1;
      i = quote + 1;
    }
  }

  /**
   * Skips a nested object or array from its opening bracket: follows strings (escapes
   * respected) and checks that brackets pair up, but does not look at what lies between
   * (numbers, literals, commas, colons). Returns the index after the closing bracket.
   */
  #skipNested(b: Uint8Array, i: number, end: number): number {
    let open = this.#nested;
    let depth = 0;
    for (;;) {
      while (i < end && NESTED_STOP[b[i]] === 0) i++;
      if (i >= end) return this.#failAt(i, 'unexpected end of input');
      const c = b[i];
      if (c === QUOTE) {
        i = this.#skipStringFast(b, i + 1, end);
        if (i < 0) return -1;
        continue;
      }
      if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
        if (depth === open.length) {
          const grown = new Uint8Array(open.length * 2);
          grown.set(open);
          this.#nested = open = grown;
        }
        open[depth++] = c;
      } else if (depth === 0 || open[--depth] !== (c === CLOSE_OBJECT ? OPEN_OBJECT : OPEN_ARRAY)) {
        return this.#failAt(i, 'mismatched bracket');
      } else if (depth === 0) {
        return i + 1;
      }
      i++;
    }
  }

  #nested = new Uint8Array(64);

  #skipNumber(b: Uint8Array, i: number, end: number): number {
    if (b[i] === MINUS) i++;
    if (i >= end || !isDigit(b[i])) return this.#failAt(i, 'bad number');
    if (b[i] === 0x30) {
      i++;
    } else {
      while (i < end && isDigit(b[i])) i++;
    }
    if (i < end && b[i] === 0x2e) {
      i++;
      if (i >= end || !isDigit(b[i])) return this.#failAt(i, 'bad number');
      while (i < end && isDigit(b[i])) i++;
    }
    if (i < end && (b[i] === 0x65 || b[i] === 0x45)) {
      i++;
      if (i < end && (b[i] === 0x2b || b[i] === MINUS)) i++;
      if (i >= end || !isDigit(b[i])) return this.#failAt(i, 'bad number');
      while (i < end && isDigit(b[i])) i++;
    }
    return i;
  }

  #skipLiteral(b: Uint8Array, i: number, end: number): number {
    for (const [first, word, kind] of LITERALS) {
      if (b[i] !== first) continue;
      for (let k = 1; k < word.length; k++) {
        if (i + k >= end) return this.#failAt(i + k, 'unexpected end of input');
        if (b[i + k] !== word[k]) return this.#failAt(i + k, 'unexpected character');
      }
      this.#literal = kind;
      return i + word.length;
    }
    return this.#failAt(i, 'unexpected character');
  }

  #end(b: Uint8Array, i: number, end: number): boolean {
    while (i < end && WHITESPACE[b[i]]) i++;
    if (i < end) return this.#fail(i, 'unexpected data after the value');
    return true;
  }

  #fail(at: number, message: string): false {
    this.errorAt = at;
    this.error = message;
    this.kinds.fill(0);
    this.rootKind = ValueKind.ABSENT;
    return false;
  }

  #failAt(at: number, message: string): -1 {
    this.#fail(at, message);
    return -1;
  }

  /** The decoded string value of field `index` (undefined unless it is a string). */
  string(bytes: Uint8Array, index: number): string | undefined {
    const kind = this.kinds[index];
    if (kind === ValueKind.STRING) return this.#decode(bytes, this.starts[index], this.ends[index]);
    if (kind === ValueKind.ESCAPED_STRING) return JSON.parse(`"${this.#decode(bytes, this.starts[index], this.ends[index])}"`) as string;
    return undefined;
  }

  /** The raw JSON text of field `index`'s value (for strings, without the quotes and undecoded). */
  raw(bytes: Uint8Array, index: number): string {
    return this.#decode(bytes, this.starts[index], this.ends[index]);
  }
}
