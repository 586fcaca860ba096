/**
 * `monitor` on the real Kafka for the pipelines that commit to Kafka (unique-users,
 * clean-users): their late and implausible shares come from their side topics, counted
 * once per source position over what their group committed, and compared here with an
 * independent count (KafkaJS) of the same side topics.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { KafkaLog } from '../../src/log/kafka.ts';
import type { RecordToProduce } from '../../src/log/types.ts';
import { KAFKA_BROKERS, TEST_DATABASE_URL } from '../helpers/env.ts';
import { startTickflow, tickflow } from '../helpers/cli.ts';
import { readTopicIndependently } from '../helpers/independent-reader.ts';
import { transactionsSettled } from '../helpers/transactions.ts';
import type { RawMessage } from '../helpers/independent-reader.ts';

const BROKERS = ['--brokers', KAFKA_BROKERS.join(',')];
const T0 = 1_468_244_340; // a minute boundary
const YEAR_2999 = 32_503_680_000;

async function until(predicate: () => Promise<boolean>, what: string, timeoutMs = 90_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

interface LateRow {
  kind: string;
  consumer: string;
  topic: string;
  advanced: number;
  late: number;
  implausible: Record<string, number>;
  share: number;
}

describe('monitor: late and implausible shares of the Kafka-committing pipelines', () => {
  const id = randomUUID().slice(0, 8);
  let log: KafkaLog;
  const created: string[] = [];
  const monitor = (topics: string, extra: string[]) => tickflow(['monitor', '--check', '--topics', topics, ...BROKERS, '--database-url', TEST_DATABASE_URL, ...extra]);

  before(() => {
    log = new KafkaLog({ brokers: KAFKA_BROKERS });
  });
  after(async () => {
    await log.deleteTopics(created).catch(() => undefined);
    await log.close();
  });

  async function produce(topic: string, partitions: number, records: RecordToProduce[]) {
    await log.createTopics([{ name: topic, partitions }]);
    created.push(topic);
    const producer = log.producer();
    await producer.send(topic, records);
    await producer.close();
  }

  /** Runs a pipeline as a group service until its group has committed every record of `input`; returns the committed offsets. */
  async function serveUntilCommitted(args: string[], group: string, input: string): Promise<Map<number, bigint>> {
    const end = (await log.offsets(input)).reduce((n, p) => n + p.latest, 0n);
    const service = startTickflow([...args, '--group', group, ...BROKERS]);
    try {
      await until(async () => {
        if (service.child.exitCode !== null) assert.fail(`service exited ${service.child.exitCode}: ${service.stderr()}`);
        return [...(await log.committed(group, input)).values()].reduce((a, b) => a + b, 0n) === end;
      }, `${group} to commit ${end} records of ${input}`);
    } finally {
      service.child.kill('SIGTERM');
      await service.exited;
    }
    return log.committed(group, input);
  }

  /**
   * A side topic read independently once no transaction is open on it: a group's offsets are
   * visible once its transaction commits, the markers that make the side records readable at
   * read_committed follow within milliseconds.
   */
  async function sideRecords(topic: string): Promise<RawMessage[]> {
    assert.ok(await transactionsSettled(log, topic), `no transaction left open on ${topic}`);
    return readTopicIndependently(KAFKA_BROKERS, topic);
  }

  /** The independent count: distinct source positions below the committed offsets, late-ish or implausible, of one pipeline. */
  function independentCount(side: readonly RawMessage[], pipeline: string, input: string, committed: Map<number, bigint>) {
    const positions = new Map<string, string>();
    for (const m of side) {
      const h = m.headers;
      const reason = h['x-original-reason'] ?? h['x-reason'];
      if (h['x-pipeline'] !== pipeline || h['x-source-topic'] !== input) continue;
      if (!['late', 'beyond-lateness', 'window-closed'].includes(reason) && !reason.startsWith('implausible-')) continue;
      if (BigInt(h['x-source-offset']) >= (committed.get(Number(h['x-source-partition'])) ?? 0n)) continue;
      positions.set(`${h['x-source-partition']}:${h['x-source-offset']}`, reason);
    }
    const late = [...positions.values()].filter((r) => !r.startsWith('implausible-')).length;
    const implausible: Record<string, number> = {};
    for (const r of positions.values()) if (r.startsWith('implausible-')) implausible[r] = (implausible[r] ?? 0) + 1;
    return { late, implausible, total: positions.size };
  }

  const rowOf = (json: string, group: string) => (JSON.parse(json) as { lateness: LateRow[] }).lateness.find((l) => l.consumer === group)!;

  it('unique-users with 0.1% implausible frames: OK, the exact count shown; a re-sent side record counts once', async () => {
    const input = `mon-uu-${id}`;
    const late = `mon-uu-late-${id}`;
    const group = `unique-users-${id}`;
    // 1,000 frames a partition, one a second, and one frame in 2999 on each partition: 3 of 3,003.
    const frames: RecordToProduce[] = [];
    for (let partition = 0; partition < 3; partition++) {
      for (let i = 0; i < 1000; i++) {
        frames.push({ partition, value: JSON.stringify({ uid: `u${i % 40}`, ts: T0 + i }) });
        if (i === 200 + partition) frames.push({ partition, value: JSON.stringify({ uid: 'stray', ts: YEAR_2999 }) });
      }
    }
    await produce(input, 3, frames);
    created.push(late, `mon-uu-out-${id}`, `${input}-dlq`);
    const committed = await serveUntilCommitted(
      ['unique-users', '--input', input, '--output', `mon-uu-out-${id}`, '--late-topic', late, '--allowed-lateness', '5s', '--max-time-skew', '20s', '--idle-timeout', '500ms'],
      group,
      input,
    );
    const side = await sideRecords(late);
    const expected = independentCount(side, 'unique-users', input, committed);
    assert.deepEqual(expected, { late: 0, implausible: { 'implausible-time': 3 }, total: 3 }, 'the three frames in 2999, independently');

    const ok = await monitor(input, ['--late-topic', late]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, new RegExp(`${group} +${input} +3003 +0 +3 time +0\\.10%`));
    assert.match(ok.stdout, /reconciliation: OK/);

    // The same source position sent again (a restart between send and commit), and one past the committed offsets.
    const first = side.find((m) => m.headers['x-reason'] === 'implausible-time')!;
    const producer = log.producer();
    await producer.send(late, [
      { value: first.value, headers: first.headers },
      { value: first.value, headers: { ...first.headers, 'x-source-offset': '5000' } },
    ]);
    await producer.close();
    const again = await monitor(input, ['--late-topic', late, '--json']);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    const row = rowOf(again.stdout, group);
    assert.deepEqual([row.kind, row.topic, row.advanced, row.late, row.implausible], ['group', input, 3003, 0, { 'implausible-time': 3 }]);
    assert.equal(independentCount(await sideRecords(late), 'unique-users', input, committed).total, 3);
    const text = await monitor(input, ['--late-topic', late]);
    assert.match(text.stdout, new RegExp(`note: group ${group}: 1 side record in ${late} repeat`));
  });

  it('unique-users with about half its frames late: fails, naming the group and the share', async () => {
    const input = `mon-uu-half-${id}`;
    const late = `mon-uu-half-late-${id}`;
    const group = `unique-users-half-${id}`;
    // 300 frames a partition in order, then the same 300 seconds again: behind the stream time.
    const frames: RecordToProduce[] = [];
    for (let partition = 0; partition < 2; partition++) {
      for (let i = 0; i < 600; i++) frames.push({ partition, value: JSON.stringify({ uid: `u${i % 30}`, ts: T0 + 100 + (i % 300) }) });
    }
    await produce(input, 2, frames);
    created.push(late, `mon-uu-half-out-${id}`, `${input}-dlq`);
    const committed = await serveUntilCommitted(
      ['unique-users', '--input', input, '--output', `mon-uu-half-out-${id}`, '--late-topic', late, '--allowed-lateness', '5s', '--idle-timeout', '500ms'],
      group,
      input,
    );
    const expected = independentCount(await sideRecords(late), 'unique-users', input, committed);
    assert.ok(expected.total > 500 && expected.total <= 600, `about half of 1,200 are late: ${JSON.stringify(expected)}`);

    const failing = await monitor(input, ['--late-topic', late]);
    assert.equal(failing.code, 1, failing.stdout + failing.stderr);
    const share = `${((expected.total / 1200) * 100).toFixed(1)}%`;
    const implausible = Object.entries(expected.implausible).map(([r, n]) => `${r} ${n}`).join(', ') || '0';
    assert.match(failing.stdout, new RegExp(`✗ group ${group} on ${input}: ${share.replace('.', '\\.')} of the 1200 records it read were dead-lettered as late \\(${expected.late}\\) or implausible \\(${implausible}\\): over --max-late-share 1\\.0%`));
    const row = rowOf((await monitor(input, ['--late-topic', late, '--json'])).stdout, group);
    assert.deepEqual([row.advanced, row.late, row.implausible], [1200, expected.late, expected.implausible]);
  });

  it('clean-users: a few implausible dates are OK, half of them fail; other dead-letter reasons do not count', async () => {
    const generated = await tickflow(['generate', 'users', '--count', '2000', '--seed', 'monitor-shares']);
    assert.equal(generated.code, 0, generated.stderr);
    const lines = generated.stdout.split('\n').filter((l) => l !== '');
    const user = (i: number, date: string) => JSON.stringify({ id: `date-${i}`, first_name: 'Ana', last_name: 'Ruiz', email: `d${i}@example.ch`, gender: 'Female', ip_address: '10.1.2.3', date, country: 'peru' });
    const cases = [
      { name: 'few', records: [...lines.slice(0, 1000), user(0, '2999-01-01'), ...lines.slice(1000), user(1, '15-Jun-1850')], code: 0 },
      { name: 'half', records: lines.slice(0, 300).flatMap((line, i) => [line, user(i, '2999-01-01')]), code: 1 },
    ];
    for (const c of cases) {
      const input = `mon-users-${c.name}-${id}`;
      const group = `clean-users-${c.name}-${id}`;
      await produce(input, 3, c.records.map((value, i) => ({ partition: i % 3, value })));
      created.push(`${input}-dlq`, `${input}-clean`, `${input}-stats`);
      const committed = await serveUntilCommitted(['clean-users', '--input', input, '--output', `${input}-clean`, '--stats-topic', `${input}-stats`], group, input);
      const side = await sideRecords(`${input}-dlq`);
      const expected = independentCount(side, 'clean-users', input, committed);
      assert.equal(expected.total, c.name === 'few' ? 2 : 300, 'the injected dates, independently');
      assert.ok(side.some((m) => m.headers['x-reason'] !== 'implausible-date'), 'the generated records have other reasons too');
      const result = await monitor(input, []);
      assert.equal(result.code, c.code, result.stdout + result.stderr);
      const row = rowOf((await monitor(input, ['--json'])).stdout, group);
      assert.deepEqual([row.kind, row.advanced, row.late, row.implausible], ['group', c.records.length, 0, { 'implausible-date': expected.total }]);
      if (c.name === 'few') assert.match(result.stdout, new RegExp(`${group} +${input} +2002 +0 +2 date +0\\.10%`));
      else assert.match(result.stdout, new RegExp(`✗ group ${group} on ${input}: 50\\.0% of the 600 records it read were dead-lettered as late \\(0\\) or implausible \\(implausible-date 300\\)`));
    }
  });
});
