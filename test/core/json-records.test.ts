import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { JsonRecordSplitter } from '../../src/core/json-records.ts';
import type { SplitterOptions } from '../../src/core/json-records.ts';
import { seededRandom } from '../../src/core/random.ts';

interface Split {
  records: Array<[string, number]>;
  problems: Array<[string, number, boolean]>;
  format: string;
}

/** Feeds `text` in pieces of the given sizes (cycled) and collects records with their line numbers. */
function split(text: string | Buffer, sizes: number[] = [1 << 20], options: SplitterOptions = {}): Split {
  const bytes = typeof text === 'string' ? Buffer.from(text) : text;
  const out: Split = { records: [], problems: [], format: '' };
  const splitter = new JsonRecordSplitter(
    (data, start, end, line) => out.records.push([Buffer.from(data.subarray(start, end)).toString(), line]),
    (problem, line, lost) => out.problems.push([problem, line, lost]),
    options,
  );
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const size = sizes[i % sizes.length];
    splitter.push(bytes.subarray(at, at + size));
    at += size;
  }
  splitter.end();
  out.format = splitter.format;
  return out;
}

/** Every chunking of small sizes gives the same answer as one chunk. */
function assertChunkingInvariant(text: string, options: SplitterOptions = {}) {
  const whole = split(text, [1 << 20], options);
  for (const sizes of [[1], [2], [3], [5], [7, 1], [13, 2, 1]]) assert.deepEqual(split(text, sizes, options), whole, `chunks ${sizes.join(',')}`);
  return whole;
}

describe('JsonRecordSplitter: JSON Lines', () => {
  it('splits lines, drops CR, skips blank lines, keeps line numbers', () => {
    const result = assertChunkingInvariant('{"a":1}\r\n\n  \n{"b":"x y"}\nnot json\n{"c":3}');
    assert.equal(result.format, 'lines');
    assert.deepEqual(result.records, [['{"a":1}', 1], ['{"b":"x y"}', 4], ['not json', 5], ['{"c":3}', 6]]);
    assert.deepEqual(result.problems, []);
  });

  it('skips a UTF-8 byte order mark and leading blank lines', () => {
    const result = assertChunkingInvariant('\ufeff\n\n{"a":"é"}\n');
    assert.deepEqual(result.records, [['{"a":"é"}', 3]]);
  });

  it('reads a file of lines that starts with [ as lines when told', () => {
    const result = split('[1,2]\n[3]\n', undefined, { format: 'lines' });
    assert.deepEqual(result.records, [['[1,2]', 1], ['[3]', 2]]);
  });

  it('skips and reports a record longer than the cap, then carries on', () => {
    const result = assertChunkingInvariant(`{"a":1}\n{"long":"${'x'.repeat(100)}"}\n{"b":2}\n`, { maxRecordBytes: 50 });
    assert.deepEqual(result.records, [['{"a":1}', 1], ['{"b":2}', 3]]);
    assert.deepEqual(result.problems, [['record 2 is longer than 50 bytes: skipped', 2, true]]);
  });

  it('gives empty input no records', () => {
    assert.deepEqual(split('').records, []);
    assert.deepEqual(split('\n\n').records, []);
  });
});

describe('JsonRecordSplitter: one JSON array', () => {
  it('splits a pretty-printed array into its elements, with the line each starts on', () => {
    const text = '[\n  {\n    "uid": "a",\n    "ts": 1\n  },\n  {"uid": "b", "ts": 2},\n  3, "x", null, [1, [2]]\n]\n';
    const result = assertChunkingInvariant(text);
    assert.equal(result.format, 'array');
    assert.deepEqual(result.records, [
      ['{\n    "uid": "a",\n    "ts": 1\n  }', 2],
      ['{"uid": "b", "ts": 2}', 6],
      ['3', 7],
      ['"x"', 7],
      ['null', 7],
      ['[1, [2]]', 7],
    ]);
    assert.deepEqual(result.problems, []);
  });

  it('is not fooled by brackets, commas and escaped quotes inside strings', () => {
    const text = '[{"a":"],[{,"},{"b":"\\"],"},{"c":"\\\\"},"\\\\\\""]';
    const result = assertChunkingInvariant(text);
    assert.deepEqual(result.records.map(([r]) => r), ['{"a":"],[{,"}', '{"b":"\\"],"}', '{"c":"\\\\"}', '"\\\\\\""']);
    for (const [r] of result.records) assert.doesNotThrow(() => JSON.parse(r));
  });

  it('handles an empty array and a byte order mark', () => {
    assert.deepEqual(assertChunkingInvariant('\ufeff [ ] ').records, []);
  });

  it('reports empty elements (a trailing or double comma)', () => {
    const result = assertChunkingInvariant('[1,,2,\n]');
    assert.deepEqual(result.records, [['1', 1], ['2', 1]]);
    assert.deepEqual(result.problems, [['empty element 2 in the array', 1, true], ['empty element 4 in the array', 2, true]]);
  });

  it('reports an array cut short, and data after the array', () => {
    assert.deepEqual(assertChunkingInvariant('[{"a":1},\n{"b":').problems, [['input ends inside the array (element 2 is incomplete)', 2, true]]);
    assert.deepEqual(assertChunkingInvariant('[1, 2').problems, [['input ends inside the array (element 2 is incomplete)', 1, true]]);
    assert.deepEqual(assertChunkingInvariant('[1]\n{"x":1}').problems, [['unexpected data after the closing ] of the array', 2, false]]);
  });

  it('splits random arrays of random JSON exactly as JSON.parse sees them', () => {
    const random = seededRandom('json-records/arrays');
    const values = [{ a: '],"[' }, 'q"uo\\te', [1, [2, { b: null }]], -1.5e3, true, { nested: { deeper: ['x', 'y'] } }, 'é😀\u2028'];
    for (let n = 0; n < 50; n++) {
      const elements = Array.from({ length: random.int(0, 8) }, () => random.pick(values));
      const text = JSON.stringify(elements, null, random.pick([0, 1, 2, '\t']));
      const chunks = [random.int(1, 9), random.int(1, 30)];
      const result = split(text, chunks);
      assert.deepEqual(result.records.map(([r]) => JSON.parse(r)), elements, text);
      assert.deepEqual(result.problems, []);
    }
  });
});
