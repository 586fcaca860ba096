import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { partitionForKey } from '../../src/core/murmur2.ts';
import { KafkaLog } from '../../src/log/kafka.ts';
import { KAFKA_BROKERS } from '../helpers/env.ts';
import { readTopicIndependently } from '../helpers/independent-reader.ts';
import { BROKERS, readAll, run, unique } from './helpers.ts';

const GOOD = [
  '{"uid":"u1","ts":1468244384,"text":"Zürich 東京 😀"}',
  '{"ts":"1468244385","uid":"u2","nested":{"uid":"x","ts":1}}',
  '{"uid":"u\\u0033","ts":1468244386,"q":"say \\"hi\\""}',
  '{"uid":"u1","ts":1468244387}',
  '{"uid":42,"ts":1}',
  '[1,2,3]',
];
/** The same records with dirt between them: line numbers are those of this file. */
const LINES = [
  GOOD[0], // 1
  '', // 2 blank: skipped, not bad
  GOOD[1], // 3
  'this is not json', // 4
  GOOD[2], // 5
  '{"uid":"u9","ts":1,}', // 6 trailing comma
  `${GOOD[3]}\r`, // 7 CRLF
  '{"uid":"u5","ts":1', // 8 truncated
  GOOD[4], // 9 valid JSON, no string uid: still sent
  GOOD[5], // 10
];
const FILE = `${LINES.join('\n')}`; // no final newline

describe('replay (real Kafka)', () => {
  let dir: string;
  let log: KafkaLog;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tickflow-replay-'));
    log = new KafkaLog({ brokers: KAFKA_BROKERS });
  });
  after(async () => {
    await log.close();
    await rm(dir, { recursive: true, force: true });
  });

  const check = async (topic: string, result: { code: number | null; stdout: string; stderr: string }) => {
    assert.equal(result.code, 0, result.stderr);
    const summary = JSON.parse(result.stdout) as { records: number; bad: number; badRecords: Array<{ line: number; record: number; problem: string }> };
    assert.equal(summary.records, GOOD.length);
    assert.equal(summary.bad, 3);
    assert.deepEqual(summary.badRecords.map((b) => [b.line, b.record]), [[4, 3], [6, 5], [8, 7]]);
    for (const b of summary.badRecords) assert.match(b.problem, /^not JSON: /);
    const messages = await readTopicIndependently(KAFKA_BROKERS, topic);
    assert.deepEqual(messages.map((m) => m.value).sort(), [...GOOD].sort(), 'exactly the good records, byte for byte');
    return messages;
  };

  it('sends the valid lines of a JSON Lines file, keyed by uid, and reports bad lines with their numbers', async () => {
    const file = join(dir, 'frames.jsonl');
    await writeFile(file, FILE);
    const topic = unique('replay-lines');
    const messages = await check(topic, await run(['replay', file, '--output', topic, '--key', 'uid', '--partitions', '3', '--json', ...BROKERS]));
    for (const m of messages) {
      const uid = (JSON.parse(m.value!) as { uid?: unknown }).uid;
      const key = typeof uid === 'string' ? uid : typeof uid === 'number' ? String(uid) : null;
      assert.equal(m.key, key, 'the key is the decoded root uid (absent uid: no key)');
      if (key !== null) assert.equal(m.partition, partitionForKey(Buffer.from(key), 3), 'partitioned like the Java client');
    }
  });

  it('reads gzip, whatever the file is called', async () => {
    const file = join(dir, 'frames.data');
    await writeFile(file, gzipSync(Buffer.from(FILE)));
    const topic = unique('replay-gz');
    await check(topic, await run(['replay', file, '--output', topic, '--json', ...BROKERS]));
  });

  it('reads one JSON array, pretty-printed, and reports its bad elements by line', async () => {
    const file = join(dir, 'frames.json');
    const text = `[\n${GOOD.slice(0, 3).map((g) => `  ${g}`).join(',\n')},\n  {"broken": tru},\n  ${GOOD.slice(3).join(',\n  ')}\n]\n`;
    await writeFile(file, text);
    const topic = unique('replay-array');
    const result = await run(['replay', file, '--output', topic, '--json', ...BROKERS]);
    assert.equal(result.code, 0, result.stderr);
    const summary = JSON.parse(result.stdout) as { format: string; records: number; bad: number; badRecords: Array<{ line: number; record: number }> };
    assert.equal(summary.format, 'array');
    assert.equal(summary.records, GOOD.length);
    assert.deepEqual(summary.badRecords.map((b) => [b.line, b.record]), [[5, 4]]);
    const messages = await readAll(log, topic);
    assert.deepEqual(messages.map((m) => m.value).sort(), [...GOOD].sort());
  });

  it('reads stdin (gzip too) and prints a human summary line', async () => {
    const topic = unique('replay-stdin');
    const plain = await run(['replay', '-', '--output', topic, ...BROKERS], { input: FILE });
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(plain.stdout, new RegExp(`^replayed 6 records \\(\\d+ B\\) from stdin to ${topic} in [\\d.]+ s: .* records/s, .* MB/s, peak RSS \\d+ MiB; 3 bad\\n`));
    assert.match(plain.stdout, /\n {2}line 4 \(record 3\): not JSON: unexpected character at byte 2\n/);
    const zipped = await run(['replay', '-', '--output', topic, '--json', ...BROKERS], { input: gzipSync(Buffer.from(FILE)) });
    assert.equal(zipped.code, 0, zipped.stderr);
    assert.equal((JSON.parse(zipped.stdout) as { gzip: boolean }).gzip, true);
    const messages = await readAll(log, topic);
    assert.equal(messages.length, 2 * GOOD.length);
  });

  it('rejects invalid UTF-8 as not JSON', async () => {
    const topic = unique('replay-utf8');
    const input = Buffer.concat([Buffer.from('{"uid":"a","ts":1}\n{"uid":"'), Buffer.from([0xc3, 0x28]), Buffer.from('","ts":2}\n')]);
    const result = await run(['replay', '-', '--output', topic, '--json', ...BROKERS], { input });
    const summary = JSON.parse(result.stdout) as { records: number; badRecords: Array<{ line: number; problem: string }> };
    assert.equal(summary.records, 1);
    assert.deepEqual(summary.badRecords, [{ line: 2, record: 2, problem: 'not JSON: invalid UTF-8' }]);
  });

  it('paces with --rate and reads a file of arrays as lines with --format lines', async () => {
    const topic = unique('replay-rate');
    const lines = Array.from({ length: 60 }, (_, i) => `[${i},{"uid":"u${i}"}]`).join('\n');
    const result = await run(['replay', '-', '--output', topic, '--rate', '400', '--format', 'lines', '--json', ...BROKERS], { input: lines });
    assert.equal(result.code, 0, result.stderr);
    const summary = JSON.parse(result.stdout) as { records: number; format: string; bad: number };
    assert.deepEqual([summary.records, summary.format, summary.bad], [60, 'lines', 0]);
    assert.equal((await readAll(log, topic)).length, 60);
  });

  it('validates its flags with one line', async () => {
    const rate = await run(['replay', '-', '--rate', '0']);
    assert.equal(rate.code, 2);
    assert.equal(rate.stderr, 'tickflow replay: --rate: must be greater than 0, got 0 (see --help)\n');
    const missing = await run(['replay']);
    assert.equal(missing.code, 2);
    assert.equal(missing.stderr, 'tickflow replay: missing FILE (see --help)\n');
  });

  it('fails with one line when the file cannot be read', async () => {
    const result = await run(['replay', join(dir, 'missing.jsonl'), ...BROKERS]);
    assert.equal(result.code, 1);
    assert.equal(result.stderr, `tickflow replay: cannot read ${join(dir, 'missing.jsonl')}: no such file or directory (ENOENT)\n`);
  });
});
