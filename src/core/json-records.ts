/**
 * Splits a byte stream into JSON records without decoding them: JSON Lines (one record per
 * line; blank lines skipped, CR before LF dropped) or one top-level JSON array (its
 * elements; any layout, pretty-printed or on one line). Pure and incremental: feed chunks
 * as they come, memory stays at one chunk plus one partial record. Records are reported as
 * byte ranges of a buffer that is only valid during the callback.
 */

export type JsonRecordFormat = 'auto' | 'lines' | 'array';

/** A record: bytes [start, end) of `data`, starting on 1-based `line` (its index in an array is `index`). */
export type RecordSink = (data: Uint8Array, start: number, end: number, line: number, index: number) => void;

/**
 * A problem in the framing itself rather than inside one record: an unterminated array,
 * data after it, an empty or oversized element. `lost` says whether a record was lost.
 */
export type FramingSink = (problem: string, line: number, lost: boolean) => void;

const NEWLINE = 0x0a;
const CR = 0x0d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const WHITESPACE = new Uint8Array(256);
for (const c of [0x20, 0x09, 0x0a, 0x0d]) WHITESPACE[c] = 1;
const BOM = [0xef, 0xbb, 0xbf];

export interface SplitterOptions {
  format?: JsonRecordFormat;
  /** Longer records are reported as a framing problem and skipped (memory bound). */
  maxRecordBytes?: number;
}

export class JsonRecordSplitter {
  readonly maxRecordBytes: number;
  #format: JsonRecordFormat;
  #onRecord: RecordSink;
  #onProblem: FramingSink;
  /** Bytes of a record that started in an earlier chunk. */
  #carry: Uint8Array = new Uint8Array(0);
  #carryLength = 0;
  #oversized = false;
  #started = false;
  #line = 1;
  #index = 0;
  // Array state.
  #depth = 0;
  #inString = false;
  #escape = false;
  #arrayState: 'before' | 'element' | 'after' | 'done' | 'ignore' = 'before';
  #recordLine = 1;

  constructor(onRecord: RecordSink, onProblem: FramingSink, options: SplitterOptions = {}) {
    this.#onRecord = onRecord;
    this.#onProblem = onProblem;
    this.#format = options.format ?? 'auto';
    this.maxRecordBytes = options.maxRecordBytes ?? 64 << 20;
  }

  /** The format in use ('auto' until the first non-blank byte has been seen). */
  get format(): JsonRecordFormat {
    return this.#format;
  }

  /** Records seen so far (including ones that later prove invalid). */
  get records(): number {
    return this.#index;
  }

  push(chunk: Uint8Array): void {
    let start = 0;
    if (!this.#started) {
      if (this.#carryLength > 0) {
        // A partial byte order mark from the previous chunk.
        const joined = new Uint8Array(this.#carryLength + chunk.length);
        joined.set(this.#carry.subarray(0, this.#carryLength));
        joined.set(chunk, this.#carryLength);
        chunk = joined;
        this.#carryLength = 0;
      }
      if (!this.#bomChecked) {
        if (chunk.length < BOM.length && chunk.every((b, i) => b === BOM[i])) {
          this.#append(chunk, 0, chunk.length);
          return;
        }
        this.#bomChecked = true;
        if (BOM.every((b, i) => chunk[i] === b)) start = BOM.length;
      }
      let i = start;
      while (i < chunk.length && WHITESPACE[chunk[i]]) i++;
      if (i === chunk.length) {
        // Only blank so far: count its lines, decide the format on the first real byte.
        for (let j = start; j < chunk.length; j++) if (chunk[j] === NEWLINE) this.#line++;
        return;
      }
      this.#started = true;
      if (this.#format === 'auto') this.#format = chunk[i] === 0x5b ? 'array' : 'lines';
    }
    if (this.#format === 'lines') this.#pushLines(chunk, start);
    else this.#pushArray(chunk, start);
  }

  #bomChecked = false;

  /** End of input: the last line without a newline; an unterminated array. */
  end(): void {
    if (this.#format === 'lines' || !this.#started) {
      if (this.#carryLength > 0 && !this.#oversized) this.#emitLine(this.#carry, 0, this.#carryLength);
      this.#carryLength = 0;
      return;
    }
    if (this.#arrayState === 'done' || this.#arrayState === 'ignore') return;
    if (this.#arrayState === 'element' && this.#carryLength > 0) {
      this.#onProblem(`input ends inside the array (element ${this.#index + 1} is incomplete)`, this.#recordLine, true);
    } else {
      this.#onProblem('input ends before the closing ] of the array', this.#line, false);
    }
    this.#carryLength = 0;
  }

  #pushLines(chunk: Uint8Array, start: number): void {
    let from = start;
    for (;;) {
      const newline = chunk.indexOf(NEWLINE, from);
      if (newline < 0) break;
      if (this.#carryLength > 0 || this.#oversized) {
        this.#append(chunk, from, newline);
        if (!this.#oversized) this.#emitLine(this.#carry, 0, this.#carryLength);
        this.#carryLength = 0;
        this.#oversized = false;
      } else {
        this.#emitLine(chunk, from, newline);
      }
      this.#line++;
      from = newline + 1;
    }
    if (from < chunk.length) this.#append(chunk, from, chunk.length);
  }

  #emitLine(data: Uint8Array, start: number, end: number): void {
    if (end > start && data[end - 1] === CR) end--;
    let i = start;
    while (i < end && WHITESPACE[data[i]]) i++;
    if (i === end) return;
    if (end - start > this.maxRecordBytes) return this.#tooLong(this.#line);
    this.#onRecord(data, start, end, this.#line, this.#index++);
  }

  /**
   * Array framing: track depth and strings byte by byte; an element is what lies between
   * `[` or `,` and `,` or `]` at depth one. Element bytes that span chunks are carried.
   */
  #pushArray(chunk: Uint8Array, start: number): void {
    // Newlines inside strings are not counted: valid JSON has none there.
    let i = start;
    let elementStart = this.#arrayState === 'element' ? start : -1;
    const n = chunk.length;
    let nextBackslash = -1;
    while (i < n) {
      const c = chunk[i];
      if (this.#inString) {
        if (this.#escape) {
          this.#escape = false;
          i++;
          continue;
        }
        // Jump to the next quote or backslash with native searches (the backslash position is
        // remembered, so a chunk is searched for it once, not once per string).
        let quote = chunk.indexOf(QUOTE, i);
        if (quote < 0) quote = n;
        if (nextBackslash < i) {
          nextBackslash = chunk.indexOf(BACKSLASH, i);
          if (nextBackslash < 0) nextBackslash = n;
        }
        if (nextBackslash < quote) {
          this.#escape = true;
          i = nextBackslash + 1;
        } else {
          if (quote < n) this.#inString = false;
          i = quote + 1;
        }
        continue;
      }
      if (c === NEWLINE) this.#line++;
      switch (this.#arrayState) {
        case 'before':
          if (c === 0x5b) {
            this.#arrayState = 'after';
            this.#depth = 1;
            this.#expectElement = true;
          } else if (!WHITESPACE[c]) {
            this.#onProblem('expected [ to start the array', this.#line, false);
            this.#arrayState = 'ignore';
            return;
          }
          break;
        case 'after':
          // Between elements: whitespace, a comma, the closing bracket, or the next element.
          if (WHITESPACE[c]) break;
          if (c === 0x5d && this.#depth === 1) {
            if (this.#sawComma) this.#reportEmpty();
            this.#arrayState = 'done';
            this.#depth = 0;
            break;
          }
          if (c === 0x2c) {
            if (this.#expectElement) this.#reportEmpty();
            this.#expectElement = true;
            this.#sawComma = true;
            break;
          }
          this.#arrayState = 'element';
          this.#expectElement = false;
          this.#sawComma = false;
          this.#recordLine = this.#line;
          elementStart = i;
          continue; // re-read this byte as part of the element
        case 'element':
          if (c === QUOTE) {
            this.#inString = true;
          } else if (c === 0x5b || c === 0x7b) {
            this.#depth++;
          } else if ((c === 0x5d || c === 0x7d) && this.#depth > 1) {
            this.#depth--;
          } else if ((c === 0x2c || c === 0x5d) && this.#depth === 1) {
            this.#finishElement(chunk, elementStart, i);
            elementStart = -1;
            this.#arrayState = 'after';
            continue; // the comma or bracket is handled in the 'after' state
          }
          break;
        case 'done':
          if (!WHITESPACE[c]) {
            this.#onProblem('unexpected data after the closing ] of the array', this.#line, false);
            this.#arrayState = 'ignore';
            return;
          }
          break;
        case 'ignore':
          return;
      }
      i++;
    }
    if (this.#arrayState === 'element' && elementStart >= 0) this.#append(chunk, elementStart, n);
  }

  #expectElement = false;
  #sawComma = false;

  #reportEmpty(): void {
    this.#onProblem(`empty element ${this.#index + 1} in the array`, this.#line, true);
    this.#index++;
  }

  #finishElement(chunk: Uint8Array, start: number, end: number): void {
    if (this.#carryLength > 0 || this.#oversized) {
      this.#append(chunk, start, end);
      if (!this.#oversized) this.#emitElement(this.#carry, 0, this.#carryLength);
      this.#carryLength = 0;
      this.#oversized = false;
    } else {
      this.#emitElement(chunk, start, end);
    }
  }

  #emitElement(data: Uint8Array, start: number, end: number): void {
    while (end > start && WHITESPACE[data[end - 1]]) end--;
    if (end - start > this.maxRecordBytes) return this.#tooLong(this.#recordLine);
    this.#onRecord(data, start, end, this.#recordLine, this.#index++);
  }

  #tooLong(line: number): void {
    this.#onProblem(`record ${this.#index + 1} is longer than ${this.maxRecordBytes} bytes: skipped`, line, true);
    this.#index++;
  }

  /** Appends bytes to the carried partial record, growing it; past the cap, drops it once and reports. */
  #append(chunk: Uint8Array, start: number, end: number): void {
    if (this.#oversized) return;
    const length = this.#carryLength + (end - start);
    if (length > this.maxRecordBytes) {
      this.#tooLong(this.#format === 'array' ? this.#recordLine : this.#line);
      this.#oversized = true;
      this.#carryLength = 0;
      return;
    }
    if (length > this.#carry.length) {
      const grown = new Uint8Array(Math.max(length, this.#carry.length * 2, 4096));
      grown.set(this.#carry.subarray(0, this.#carryLength));
      this.#carry = grown;
    }
    this.#carry.set(chunk.subarray(start, end), this.#carryLength);
    this.#carryLength = length;
  }
}
