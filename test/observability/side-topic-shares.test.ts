/**
 * Reading a Kafka-committing pipeline's side topic (unit, embedded log): which records count,
 * once per source position, only below the committed offsets, and the memory bound.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryLog } from '../../src/log/memory.ts';
import { SideTopicReader, sideTopicRejections } from '../../src/observability/side-topic-shares.ts';
import { collectSnapshot } from '../../src/observability/reconciliation.ts';

const letter = (reason: string, offset: number, extra: Record<string, string> = {}) => ({
  value: 'x',
  headers: { 'x-reason': reason, 'x-pipeline': 'unique-users', 'x-source-topic': 'frames', 'x-source-partition': '0', 'x-source-offset': String(offset), ...extra },
});

async function setup(letters: ReturnType<typeof letter>[]) {
  const log = new MemoryLog();
  await log.createTopics([{ name: 'frames', partitions: 1 }, { name: 'user-tracker-late', partitions: 2 }]);
  const producer = log.producer();
  await producer.send('frames', Array.from({ length: 100 }, (_, i) => ({ value: `f${i}` })));
  await producer.send('user-tracker-late', letters.map((l, i) => ({ ...l, partition: i % 2 })));
  const group = { group: 'unique-users', topic: 'frames', positions: new Map([[0, 50n]]), offsets: await log.offsets('frames') };
  return { log, group };
}

describe('side-topic shares', () => {
  it('counts late and implausible reasons of the pipeline and source topic, once per position, below the committed offset', async () => {
    const { log, group } = await setup([
      letter('beyond-lateness', 1), letter('window-closed', 2), letter('implausible-time', 3), letter('implausible-time', 3),
      letter('too-large', 4, { 'x-original-reason': 'implausible-time' }), letter('not-json', 5), letter('beyond-lateness', 60),
      letter('beyond-lateness', 6, { 'x-pipeline': 'clean-users' }), letter('beyond-lateness', 7, { 'x-source-topic': 'other' }),
      letter('beyond-lateness', 8, { 'x-source-offset': 'eight' }),
    ]);
    const other = { ...group, group: 'dashboard-reader' };
    const { rejections, notes } = await sideTopicRejections(log, [group, other]);
    assert.deepEqual(rejections.map(({ group: g, consumed, late, implausible, duplicates }) => ({ g, consumed, late, implausible, duplicates })), [
      { g: 'unique-users', consumed: 50, late: 2, implausible: { 'implausible-time': 2 }, duplicates: 1 },
    ]);
    assert.deepEqual(notes, []);
  });

  it('stops at the memory bound with a note: the counts are lower bounds', async () => {
    const { log, group } = await setup(Array.from({ length: 10 }, (_, i) => letter('beyond-lateness', i)));
    const { rejections, notes } = await sideTopicRejections(log, [group], { maxPositions: 3 });
    assert.ok(rejections[0].late >= 3 && rejections[0].late < 10, String(rejections[0].late));
    assert.match(notes[0], /^side topic user-tracker-late: stopped after \d+ of 10 records at \d+ distinct late or implausible positions \(the memory bound\); the shares from it are lower bounds$/);
  });

  it('reports progress on a side topic larger than the progress step, none on a small one', async () => {
    const { log, group } = await setup(Array.from({ length: 10 }, (_, i) => letter('beyond-lateness', i)));
    const lines: string[] = [];
    const { rejections } = await sideTopicRejections(log, [group], { progress: (line) => lines.push(line), progressEvery: 4 });
    assert.equal(rejections[0].late, 10);
    assert.ok(lines.length >= 1, 'progress was reported');
    for (const line of lines) assert.match(line, /^monitor: user-tracker-late: read ([4-9]|10) of 10 side records$/);
    lines.length = 0;
    await sideTopicRejections(log, [group], { progress: (line) => lines.push(line), progressEvery: 10 });
    assert.deepEqual(lines, []);
  });

  it('a side topic that cannot be read leaves the group out and says why', async () => {
    const { log, group } = await setup([letter('beyond-lateness', 1)]);
    const refused = async function* () {
      throw new Error('Not authorized to access topics: [user-tracker-late]');
    };
    const denied = new Proxy(log, {
      get: (target, name) => {
        if (name === 'readRange') return refused;
        const value: unknown = Reflect.get(target, name);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const report = await sideTopicRejections(denied, [group]);
    assert.deepEqual(report.rejections, []);
    assert.deepEqual(report.unreadable, [{ group: 'unique-users', topic: 'frames', sideTopic: 'user-tracker-late', error: 'Not authorized to access topics: [user-tracker-late]' }]);
    // The group commits 50 of frames, so that monitor finds it.
    const member = log.subscribe({ group: 'unique-users', topics: ['frames'] });
    for await (const _batch of member) {
      await member.commit([{ topic: 'frames', partition: 0, offset: 50n }]);
      break;
    }
    await member.close();
    const snapshot = await collectSnapshot(denied, null, { topics: ['frames'], sideTopics: new SideTopicReader() });
    assert.deepEqual(snapshot.problems.filter((p) => p.where.startsWith('group')), [
      { where: 'group unique-users on frames', message: 'its late and implausible share is unknown: side topic user-tracker-late could not be read (Not authorized to access topics: [user-tracker-late])' },
    ]);
  });

  it('a reader kept across reads (monitor --watch) reads only what was added since', async () => {
    const { log, group } = await setup([letter('beyond-lateness', 1), letter('implausible-time', 2)]);
    const reader = new SideTopicReader();
    const first = (await reader.read(log, [group])).rejections[0];
    assert.deepEqual([first.late, first.implausible, first.duplicates], [1, { 'implausible-time': 1 }, 0]);
    const producer = log.producer();
    await producer.send('user-tracker-late', [letter('beyond-lateness', 3), letter('beyond-lateness', 1)]);
    const second = (await reader.read(log, [group])).rejections[0];
    // Had it read from the start again, positions 1 and 2 would be repeats as well.
    assert.deepEqual([second.late, second.implausible, second.duplicates], [2, { 'implausible-time': 1 }, 1]);
    const third = (await reader.read(log, [group])).rejections[0];
    assert.deepEqual([third.late, third.duplicates], [2, 1]);
  });

  it('notes a side topic that does not exist', async () => {
    const { log, group } = await setup([]);
    const { rejections, notes } = await sideTopicRejections(log, [group], { lateTopic: 'nowhere' });
    assert.equal(rejections[0].late, 0);
    assert.deepEqual(notes, ['group unique-users (unique-users): side topic nowhere does not exist; no late or implausible records counted from it']);
  });
});
