/**
 * clean-users as a service (a group member catching up a backlog, --idle-timeout 5s) while
 * the leader of a partition it reads is killed: it keeps running, and its outputs equal the
 * same run without the fault (a bounded run over the same input, done first): the same
 * conformed records, the same dead letters (each input record on exactly one of the two
 * topics, none twice), and one country report per window, as recomputed here from the
 * conformed records.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { forEachMessageIndependently } from '../helpers/independent-reader.ts';
import { BROKERS_FLAG, FAULT_BROKERS, committedCount, createTopics, deleteTopics, messageCount } from './cluster.ts';
import { FaultRun, KAFKA_LEADER_KILL, killLeader } from './fault-run.ts';
import { unique } from './suite.ts';
import { tickflow } from './tickflow-process.ts';

// Enough for several seconds of work: the fault must land while records are still coming.
const COUNT = 400_000;

interface Outputs {
  /** Conformed records, sorted. */
  clean: string[];
  /** Dead letters as `partition@offset reason`, sorted. */
  dead: string[];
  /** Country reports as sent. */
  stats: Array<{ window: { start: string; end: string }; records: number; uniqueUsers: number; most: { countries: string[]; count: number }; least: { countries: string[]; count: number } }>;
}

async function readOutputs(topics: { clean: string; dead: string; stats: string }): Promise<Outputs> {
  const clean: string[] = [];
  const dead: string[] = [];
  const stats: Outputs['stats'] = [];
  await forEachMessageIndependently(FAULT_BROKERS, topics.clean, (m) => void clean.push(m.value!));
  await forEachMessageIndependently(FAULT_BROKERS, topics.dead, (m) => void dead.push(`${m.headers['x-source-partition']}@${m.headers['x-source-offset']} ${m.headers['x-reason']}`));
  await forEachMessageIndependently(FAULT_BROKERS, topics.stats, (m) => void stats.push(JSON.parse(m.value!) as Outputs['stats'][number]));
  return { clean: clean.sort(), dead: dead.sort(), stats };
}

const topicsFor = (label: string) => ({ clean: unique(`${label}-clean`), dead: unique(`${label}-dead`), stats: unique(`${label}-stats`) });
const flags = (t: { clean: string; dead: string; stats: string }) => ['--output', t.clean, '--dead-letter-topic', t.dead, '--stats-topic', t.stats, '--window', '1d'];

describe('fault: clean-users (service)', () => {
  const input = unique('users-in');
  const undisturbed = topicsFor('users-base');
  const faulted = topicsFor('users-fault');
  const created = [input, ...Object.values(undisturbed), ...Object.values(faulted)];
  let baseline: Outputs;
  before(async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tickflow-faults-users-'));
    try {
      const file = join(dir, 'users.jsonl');
      const generated = await tickflow(['generate', 'users', '--count', String(COUNT), '--seed', 'faults-clean-users', '-o', file]);
      assert.equal(generated.code, 0, generated.stderr);
      await createTopics([input, undisturbed.clean, undisturbed.dead, faulted.clean, faulted.dead]);
      await createTopics([undisturbed.stats, faulted.stats], 1);
      const replayed = await tickflow(['replay', file, '--output', input, '--key', 'id', ...BROKERS_FLAG]);
      assert.equal(replayed.code, 0, replayed.stderr);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    assert.equal(await messageCount(input), COUNT);
    // The same run without the fault.
    const bounded = await tickflow(['clean-users', '--until-end', '--input', input, ...flags(undisturbed), ...BROKERS_FLAG]);
    assert.equal(bounded.code, 0, bounded.stderr);
    baseline = await readOutputs(undisturbed);
    assert.equal(baseline.clean.length + baseline.dead.length, COUNT);
  });
  after(() => deleteTopics(created));

  it(`${KAFKA_LEADER_KILL} 1 s in: keeps running; outputs equal the run without the fault`, async () => {
    const run = new FaultRun('clean-users (service)', KAFKA_LEADER_KILL);
    try {
      const cleaner = await run.start('clean-users', ['clean-users', '--input', input, ...flags(faulted), '--group', unique('clean-users'), '--idle-timeout', '5s', ...BROKERS_FLAG]);
      run.watch(() => cleaner.metric(['tickflow_records_in_total'], { pipeline: 'clean-users' }));
      await run.strike(() => killLeader(input, 0), { total: COUNT });
      // The outputs are written in transactions: count what read_committed readers see.
      const written = async () => (await committedCount(faulted.clean)) + (await committedCount(faulted.dead));
      await run.waitUntil(async () => (await written()) >= COUNT && (await committedCount(faulted.stats)) >= baseline.stats.length, `${COUNT} records out and the window reported`, 120_000);
      await sleep(6000); // one more idle flush: a window reported twice would show now
      await run.stopAll();
      await run.verify(async () => {
        const got = await readOutputs(faulted);
        const positions = got.dead.map((d) => d.split(' ')[0]);
        assert.equal(new Set(positions).size, positions.length, 'no record dead-lettered twice');
        assert.equal(got.clean.length + got.dead.length, COUNT, `each of the ${COUNT} records once: ${got.clean.length} clean + ${got.dead.length} dead-lettered`);
        assert.ok(got.clean.length === baseline.clean.length && got.clean.every((c, i) => c === baseline.clean[i]), 'the conformed records of the run without the fault');
        assert.deepEqual(got.dead, baseline.dead, 'the dead letters of the run without the fault');
        // The country report, recomputed from the conformed records (one window: a day).
        const byCountry = new Map<string, number>();
        const ids = new Set<string>();
        for (const text of got.clean) {
          const user = JSON.parse(text) as { id: number | string; country: string };
          byCountry.set(user.country, (byCountry.get(user.country) ?? 0) + 1);
          ids.add(String(user.id));
        }
        const max = Math.max(...byCountry.values());
        const min = Math.min(...byCountry.values());
        const summary = (s: Outputs['stats'][number]) => ({ records: s.records, uniqueUsers: s.uniqueUsers, most: s.most, least: s.least });
        assert.equal(got.stats.length, baseline.stats.length, `${baseline.stats.length} country report(s), as without the fault: got ${got.stats.map((s) => `${s.window.start} ${s.records} records`).join(', ')}`);
        assert.deepEqual(got.stats, baseline.stats);
        if (got.stats.length === 1) {
          assert.deepEqual(summary(got.stats[0]), {
            records: got.clean.length,
            uniqueUsers: ids.size,
            most: { countries: [...byCountry].filter(([, n]) => n === max).map(([c]) => c).sort(), count: max },
            least: { countries: [...byCountry].filter(([, n]) => n === min).map(([c]) => c).sort(), count: min },
          });
        }
      });
    } finally {
      await run.finish();
    }
  });
});
