import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RootFields, ValueKind } from '../../src/core/json-root-fields.ts';
import { seededRandom } from '../../src/core/random.ts';
import type { Random } from '../../src/core/random.ts';

const NAMES = ['uid', 'ts'];
const strict = new RootFields(NAMES);
const fast = new RootFields(NAMES, { validateStrings: false });

/** What JSON.parse says about the same bytes: valid or not, and the root uid/ts. */
function reference(bytes: Buffer): { valid: boolean; fields?: Array<{ kind: number; value?: unknown }> } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    return { valid: false };
  }
  const root = parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : null;
  return {
    valid: true,
    fields: NAMES.map((name) => {
      if (!root || !Object.hasOwn(root, name)) return { kind: ValueKind.ABSENT };
      const v = root[name];
      if (typeof v === 'string') return { kind: ValueKind.STRING, value: v };
      if (typeof v === 'number') return { kind: ValueKind.NUMBER, value: v };
      if (v === true) return { kind: ValueKind.TRUE };
      if (v === false) return { kind: ValueKind.FALSE };
      if (v === null) return { kind: ValueKind.NULL };
      return { kind: Array.isArray(v) ? ValueKind.ARRAY : ValueKind.OBJECT, value: JSON.stringify(v) };
    }),
  };
}

/** The scanner's view of the same bytes, in the reference's terms. */
function scanned(scanner: RootFields, bytes: Buffer, pad = 0): { valid: boolean; fields?: Array<{ kind: number; value?: unknown }> } {
  // Scan inside a larger buffer so that offsets are exercised.
  const framed = Buffer.concat([Buffer.alloc(pad, 0x7b), bytes, Buffer.alloc(pad, 0x22)]);
  if (!scanner.scan(framed, pad, pad + bytes.length)) return { valid: false };
  return {
    valid: true,
    fields: NAMES.map((_, i) => {
      const kind = scanner.kinds[i];
      if (kind === ValueKind.ABSENT || kind === ValueKind.TRUE || kind === ValueKind.FALSE || kind === ValueKind.NULL) return { kind };
      if (kind === ValueKind.STRING || kind === ValueKind.ESCAPED_STRING) return { kind: ValueKind.STRING, value: scanner.string(framed, i) };
      const raw = scanner.raw(framed, i);
      if (kind === ValueKind.NUMBER) return { kind, value: Number(raw) };
      return { kind, value: JSON.stringify(JSON.parse(raw)) };
    }),
  };
}

describe('RootFields: valid documents', () => {
  const cases: Array<[string, string]> = [
    ['a flat frame', '{"uid":"abc","ts":1468244384}'],
    ['ts as a string', '{"ts":"1468244384","uid":"abc"}'],
    ['nested uid/ts are ignored', '{"a":{"uid":"nested","ts":1},"uid":"root","b":[{"ts":2}],"ts":3}'],
    ['only nested keys: absent at the root', '{"a":{"uid":"x","ts":1},"b":[{"uid":"y"}]}'],
    ['duplicate keys: the last wins', '{"uid":"first","ts":1,"uid":"last","ts":"2"}'],
    ['a duplicate that is not a string wins too', '{"uid":"first","uid":7}'],
    ['escaped key names match', '{"u\\u0069d":"escaped-key","\\u0074s":5}'],
    ['escaped values are decoded', '{"uid":"caf\\u00e9 \\"quoted\\" \\\\ \\/ \\n \\ud83d\\ude00"}'],
    ['unicode values', '{"uid":"Zürich 東京 😀","ts":-1.5e3}'],
    ['uid holding an object and ts an array', '{"uid":{"x":[1,{"uid":"y"}]},"ts":[]}'],
    ['literals', '{"uid":true,"ts":null,"x":false}'],
    ['empty containers everywhere', '{"a":{},"b":[],"c":[[]],"d":[{}],"uid":"u"}'],
    ['whitespace everywhere', ' \t\r\n{ "uid" \n: "u" , "ts"\t:\r0 } \n'],
    ['numbers of every shape', '{"ts":0,"a":-0,"b":1.25,"c":1e5,"d":1E-5,"e":-12.5e+3,"uid":"n"}'],
    ['an array root', '[{"uid":"inside"}]'],
    ['a string root', '"uid"'],
    ['a number root', '42'],
    ['an empty object', '{}'],
    ['a key that only starts like uid', '{"uidx":"no","uid":"yes","t":1,"tss":2}'],
    ['keys with special characters', '{"":1,"u\\"id":2,"uid":"k"}'],
    ['brackets inside strings', '{"a":"}]{[","uid":"]","ts":"{"}'],
  ];
  for (const [name, text] of cases) {
    it(name, () => {
      const bytes = Buffer.from(text);
      const expected = reference(bytes);
      assert.equal(expected.valid, true, 'the case itself must be valid JSON');
      assert.deepEqual(scanned(strict, bytes, 3), expected);
      assert.deepEqual(scanned(fast, bytes, 3), expected);
    });
  }

  it('reports the root kind', () => {
    for (const [text, kind] of [['{}', ValueKind.OBJECT], ['[]', ValueKind.ARRAY], ['"s"', ValueKind.STRING], ['1', ValueKind.NUMBER], ['null', ValueKind.NULL]] as const) {
      assert.equal(strict.scan(Buffer.from(text)), true);
      assert.equal(strict.rootKind, kind, text);
    }
  });

  it('handles nesting far deeper than its initial stack', () => {
    const depth = 5000;
    const text = `{"uid":"deep","x":${'['.repeat(depth)}${']'.repeat(depth)},"ts":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`;
    const bytes = Buffer.from(text);
    assert.doesNotThrow(() => JSON.parse(text));
    assert.equal(strict.scan(bytes), true);
    assert.equal(strict.string(bytes, 0), 'deep');
    assert.equal(strict.kinds[1], ValueKind.OBJECT);
    assert.equal(strict.ends[1], bytes.length - 1);
    assert.equal(strict.scan(Buffer.from(text.slice(0, -2))), false, 'one bracket short');
  });
});

describe('RootFields: invalid documents', () => {
  const cases: Array<[string, string, number]> = [
    ['empty input', '', 0],
    ['only whitespace', '  \n', 3],
    ['trailing comma in an object', '{"a":1,}', 7],
    ['trailing comma in an array', '[1,]', 3],
    ['missing colon', '{"a" 1}', 5],
    ['missing value', '{"a":}', 5],
    ['single quotes', "{'a':1}", 1],
    ['unquoted key', '{a:1}', 1],
    ['unterminated string', '{"uid":"abc', 11],
    ['unterminated object', '{"uid":"abc"', 12],
    ['mismatched brackets', '{"a":[1}', 7],
    ['leading zero', '{"ts":012}', 7],
    ['leading plus', '{"ts":+1}', 6],
    ['bare fraction dot', '{"ts":1.}', 8],
    ['exponent without digits', '{"ts":1e}', 8],
    ['NaN', '{"ts":NaN}', 6],
    ['misspelt literal', '{"a":tru}', 8],
    ['two values', '{"a":1} {"b":2}', 8],
    ['data after the value', '{"uid":"x"}x', 11],
    ['a comment', '{"a":1 /* no */}', 7],
    ['a raw control character in a string', '{"uid":"a\tb"}', 9],
    ['a bad escape', '{"uid":"\\x41"}', 8],
    ['a short unicode escape', '{"uid":"\\u12"}', 8],
    ['a lone backslash at the end', '{"uid":"\\', 8],
    ['a non-breaking space as whitespace', '{\u00a0"a":1}', 1],
  ];
  for (const [name, text, at] of cases) {
    it(name, () => {
      const bytes = Buffer.from(text);
      assert.equal(reference(bytes).valid, false, 'JSON.parse must reject the case too');
      assert.equal(strict.scan(bytes), false);
      assert.equal(strict.errorAt, at, strict.error);
      assert.ok(strict.error.length > 0);
      assert.equal(strict.kinds[0], ValueKind.ABSENT, 'no field survives a failed scan');
    });
  }

  it('without string validation, misses only problems inside strings (a root key with a bad escape still fails); nested values are only bracket-checked', () => {
    assert.equal(fast.scan(Buffer.from('{"body":"a\tb","uid":"u"}')), true);
    assert.equal(fast.scan(Buffer.from('{"body":"\\x","uid":"u"}')), true);
    assert.equal(fast.scan(Buffer.from('{"x":{"b\\xdy":1},"uid":"u"}')), true);
    assert.equal(fast.scan(Buffer.from('{"x":1,"u\\xd":"u"}')), false);
    assert.equal(fast.scan(Buffer.from('{"body":"ok","uid":"u",}')), false);
    // Nested values nobody asked for are followed through strings and brackets only.
    assert.equal(fast.scan(Buffer.from('{"a":[tru,,{"b" 1}],"uid":"u"}')), true);
    assert.equal(fast.scan(Buffer.from('{"a":[1,{"b":"]"}}],"uid":"u"}')), false, 'brackets must pair up');
    assert.equal(fast.scan(Buffer.from('{"a":{"b":["x"]')), false, 'unterminated');
    assert.equal(fast.scan(Buffer.from('{"uid":[1,2,}]}')), false, 'a wanted value is always checked in full');
  });
});

/** Random JSON text: any value, non-canonical escapes and whitespace, uid/ts keys at any depth. */
function randomJson(random: Random, depth: number, root = false): string {
  const ws = () => (random.next() < 0.2 ? random.pick([' ', '\n', '\t', '\r\n', '  ']) : '');
  const kind = root ? 6 : random.int(0, depth > 3 ? 4 : 6);
  switch (kind) {
    case 0: return randomString(random);
    case 1: return random.pick(['0', '-0', '1', '-12', '3.25', '1e3', '-2.5E-4', '1468244384', '1468244384.123', '9007199254740993', '1e400']);
    case 2: return random.pick(['true', 'false', 'null']);
    case 3: return `"${random.int(1_000_000_000, 1_999_999_999)}"`;
    case 4: return randomString(random);
    case 5: {
      const items = Array.from({ length: random.int(0, 4) }, () => ws() + randomJson(random, depth + 1) + ws());
      return `[${items.join(',')}]`;
    }
    default: {
      const items = Array.from({ length: random.int(root ? 1 : 0, 6) }, () => `${ws()}${randomKey(random)}${ws()}:${ws()}${randomJson(random, depth + 1)}${ws()}`);
      return `{${items.join(',')}}`;
    }
  }
}

function randomKey(random: Random): string {
  return random.pick(['"uid"', '"ts"', '"uid"', '"ts"', '"u\\u0069d"', '"\\u0074s"', '"uidx"', '"t"', '"body"', '"a"', '""', '"ts "', '"UID"']);
}

const ALPHABET = ['a', 'b', 'Z', '0', ' ', 'é', 'ß', '東', '京', '😀', '\u2028', '"', '\\', '/', '\n', '\t', '\u0001', '{', '}', '[', ']', ',', ':'];

function randomString(random: Random): string {
  let out = '"';
  for (let i = random.int(0, 12); i > 0; i--) {
    const c = random.pick(ALPHABET);
    const code = c.codePointAt(0)!;
    const mustEscape = c === '"' || c === '\\' || code < 0x20;
    if (mustEscape || random.next() < 0.15) {
      if (c.length === 1 && random.next() < 0.5) out += `\\u${code.toString(16).padStart(4, random.next() < 0.5 ? '0' : '0')}`;
      else if (c === '"' || c === '\\' || c === '/') out += `\\${c}`;
      else if (c === '\n') out += '\\n';
      else if (c === '\t') out += '\\t';
      else if (c.length === 1) out += `\\u${code.toString(16).toUpperCase().padStart(4, '0')}`;
      else out += c;
    } else {
      out += c;
    }
  }
  return `${out}"`;
}

const MUTATION_BYTES = [0x7b, 0x7d, 0x5b, 0x5d, 0x22, 0x2c, 0x3a, 0x5c, 0x20, 0x0a, 0x09, 0x30, 0x39, 0x2d, 0x2e, 0x65, 0x74, 0x6e, 0x75, 0x01, 0x7f, 0xc3, 0xff];

function mutate(random: Random, bytes: Buffer): Buffer {
  const at = random.int(0, bytes.length);
  const b = Buffer.from([random.pick(MUTATION_BYTES)]);
  switch (random.int(0, 2)) {
    case 0: return Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1)]);
    case 1: return Buffer.concat([bytes.subarray(0, at), b, bytes.subarray(at)]);
    default: return Buffer.concat([bytes.subarray(0, at), b, bytes.subarray(at + 1)]);
  }
}

describe('RootFields: fuzzed against JSON.parse', () => {
  it('agrees on long strings with one odd byte at every position and every alignment (the word-at-a-time path)', () => {
    const random = seededRandom('json-root-fields/long');
    const body = 'Zürich 東京 😀 plain text that runs on for a while '.repeat(4);
    for (const odd of ['"', '\\', '\t', '\u0001', '\u001f', ' ', '\\n', '\\u00e9', '\\x', '\\"']) {
      for (let at = 0; at <= body.length; at += random.int(1, 5)) {
        const text = `{"uid":"${body.slice(0, at)}${odd}${body.slice(at)}","ts":1,"x":"${body}"}`;
        const bytes = Buffer.from(text);
        const expected = reference(bytes);
        for (let pad = 0; pad < 4; pad++) {
          assert.deepEqual(scanned(strict, bytes, pad), expected, `${JSON.stringify(odd)} at ${at}, pad ${pad}`);
          if (expected.valid) assert.deepEqual(scanned(fast, bytes, pad), expected);
        }
      }
    }
  });

  it('agrees on 20,000 random valid documents (both modes)', () => {
    const random = seededRandom('json-root-fields/valid');
    for (let n = 0; n < 20_000; n++) {
      const bytes = Buffer.from(randomJson(random, 0, random.next() < 0.9));
      const expected = reference(bytes);
      assert.equal(expected.valid, true, bytes.toString());
      assert.deepEqual(scanned(strict, bytes, n % 3), expected, bytes.toString());
      assert.deepEqual(scanned(fast, bytes, n % 3), expected, bytes.toString());
    }
  });

  it('agrees on acceptance of 40,000 mutated documents (strict) and on the fields of every valid one (both modes)', () => {
    const random = seededRandom('json-root-fields/mutated');
    let rejected = 0;
    for (let n = 0; n < 40_000; n++) {
      let bytes: Buffer = Buffer.from(randomJson(random, 0, true));
      for (let k = random.int(1, 3); k > 0; k--) bytes = mutate(random, bytes);
      const expected = reference(bytes);
      const got = scanned(strict, bytes);
      assert.equal(got.valid, expected.valid, `strict on ${JSON.stringify(bytes.toString('latin1'))}`);
      if (expected.valid) assert.deepEqual(got, expected, bytes.toString('latin1'));
      else rejected++;
      if (expected.valid) assert.deepEqual(scanned(fast, bytes), expected, `fast on ${JSON.stringify(bytes.toString('latin1'))}`);
    }
    assert.ok(rejected > 10_000, `the mutations must produce plenty of invalid documents (${rejected})`);
  });
});
