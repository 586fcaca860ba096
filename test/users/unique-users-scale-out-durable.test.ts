/**
 * `unique-users --scale-out --database-url` on the real Kafka and PostgreSQL: two members of
 * one group, each with its own --instance-id (static membership), over a 6-partition input
 * keyed by uid while frames stream in. Mid-run one member is killed -9 and started again under
 * the same id. Then:
 *
 * - it got its partitions back without a rebalance and resumed from its own snapshot: its
 *   resume line names the snapshot its partitions' committed offsets named at the kill, each
 *   partition read from the snapshot's position (or the committed offset, when further on) up to
 *   the committed read position — far less than from the committed offsets (the open hour's
 *   first frames), which is what a member re-reads without durable state;
 * - the output (kcat, read_committed) holds exactly one record per window, equal to the
 *   independent recount (reference.ts) and, text for text, to a single instance's;
 * - user_minute_sketches holds one row per minute, written by the combining member from the
 *   partials' minute sketches: frames, late and exact count as the recount, and every row byte
 *   for byte the single instance's (`--database-url`, one process) — the merged sketch of
 *   disjoint partials is the sketch of the whole minute.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { testKafkaLog } from '../helpers/kafka-log.ts';
import { transactionsSettled } from '../helpers/transactions.ts';
import { committedPositions, unique } from './helpers.ts';
import type { CommittedPosition } from './helpers.ts';
import { assertAsSingleInstance, countRecords, expectedWindows, finish, scaleOutFrames, scaleOutTopics as topics, sleep, startMember, testDatabases } from './scale-out.ts';

const FRAMES = 120_000;
const PARTITIONS = 6;
const PER_SECOND = 15;

describe('unique-users --scale-out --database-url: durable members and minute sketches', { timeout: 900_000 }, () => {
  const kafka = testKafkaLog();
  const { created } = kafka;
  const databases = testDatabases();

  it('a member killed -9 and restarted under its --instance-id resumes from its own snapshot; each window once and each minute row as a single instance', async () => {
    const input = unique('uu-sod');
    const scaled = topics('uu-sod');
    const single = topics('uu-sod-one');
    const group = unique('uu-sod-group');
    created.push(input, ...Object.values(scaled), ...Object.values(single), `${group}-partials`);
    await kafka.log.createTopics([{ name: input, partitions: PARTITIONS }]);
    const scaledDb = await databases.create('uu_sod');
    const singleDb = await databases.create('uu_sod_one');
    const all = scaleOutFrames('unique-users-scale-out-durable', FRAMES, { partitions: PARTITIONS, keyed: true, perSecond: PER_SECOND });

    const member = (id: string, logLevel = 'warn') => startMember(input, scaled, group, ['--scale-out', '--instance-id', id, '--database-url', scaledDb.url, '--state-interval', '2s'], logLevel);
    const committed = () => committedPositions(kafka.log, group, input);

    const members = [member('member-a'), member('member-b')];
    let before = new Map<number, CommittedPosition>();
    /**
     * Mid-run, once every partition's commit names a snapshot of its member (two members: two
     * snapshots) and some partition has committed frames read after its snapshot (a restart
     * judges those again), member a goes, and comes back under its id well within the session
     * timeout (10 s): the group keeps its partitions for it.
     */
    let feeding = true;
    const killing = (async () => {
      for (let w = 0; ; w++) {
        const now = await committed();
        if (now.size === PARTITIONS && [...now.values()].every((c) => c.snapshot !== null) && new Set([...now.values()].map((c) => c.snapshot)).size === 2
          && [...now.values()].some((c) => c.read > c.at!) && [...now.values()].some((c) => c.read > BigInt(Math.floor((FRAMES / PARTITIONS) * 0.6)))) break;
        if (!feeding) assert.fail(`no commit past a snapshot while the frames came: ${members.map((m) => m.stderr()).join('\n---\n')}`);
        await sleep(50);
      }
      members[0]!.child.kill('SIGKILL');
      assert.equal(await members[0]!.exited, 'SIGKILL', members[0]!.stderr());
      before = await committed();
      members.push(member('member-a', 'info'));
    })();
    killing.catch(() => undefined); // awaited below
    const producer = kafka.log.producer();
    const chunk = Math.ceil(all.length / 40);
    for (let i = 0; i < all.length; i += chunk) {
      await producer.send(input, all.slice(i, i + chunk).map((f) => ({ value: f.text, partition: f.partition })));
      await sleep(500);
    }
    await producer.close();
    feeding = false;
    await killing;

    const expected = await expectedWindows(kafka.log, input);
    await finish(kafka.log, members, scaled.output, expected.length);
    await finish(kafka.log, [startMember(input, single, unique('uu-sod-one-group'), ['--database-url', singleDb.url])], single.output, expected.length);
    for (const t of [scaled, single]) assert.ok(await transactionsSettled(kafka.log, t.output), `no transaction left open on ${t.output}`);
    assertAsSingleInstance(scaled.output, single.output, expected);

    // The restarted member's resume line: its snapshot, and per partition where it read from up to where frames were judged again.
    const restarted = members[2]!.stderr();
    const line = restarted.split('\n').find((l) => l.includes('resuming from durable state'));
    assert.ok(line, `the restarted member resumed from durable state: ${restarted.slice(-3000)}`);
    const entry = JSON.parse(line) as { snapshot: string; partitions: string[] };
    const mine = [...before].filter(([, c]) => c.snapshot === entry.snapshot);
    assert.ok(mine.length > 0 && mine.length < PARTITIONS, `the snapshot ${entry.snapshot} is the one some partitions' commits named at the kill: ${JSON.stringify([...before].map(([p, c]) => [p, c.snapshot]))}`);
    assert.equal(entry.partitions.length, mine.length, 'it got back exactly the partitions of its snapshot');
    let durable = 0n;
    let old = 0n;
    for (const text of entry.partitions) {
      const m = /^(\d+)@(\d+)\.\.(\d+) /.exec(text);
      assert.ok(m, text);
      const c = before.get(Number(m[1]));
      assert.ok(c && c.snapshot === entry.snapshot, `partition ${m[1]} was the killed member's`);
      assert.equal(BigInt(m[3]), c.read, `partition ${m[1]} judged again up to the committed read position`);
      assert.equal(BigInt(m[2]), c.offset > c.at! ? c.offset : c.at, `partition ${m[1]} read from the snapshot's position, or its committed offset when further on`);
      durable += c.read - BigInt(m[2]);
      old += c.read - c.offset;
    }
    assert.ok(durable * 3n < old, `re-read ${durable} frames from the snapshot; from the committed offsets it would have been ${old}`);

    // One row per minute, as the recount and byte for byte as the single instance's.
    const rows = await databases.assertMinuteRows(scaledDb, singleDb, expected);
    console.log(`# ${FRAMES} frames, ${expected.length} windows, ${rows} minute rows; the restarted member re-read ${durable} frames from its snapshot (${old} from the committed offsets); partials ${await countRecords(kafka.log, `${group}-partials`)}`);
  });

  it('--repartition (input not keyed by uid): the combined minutes\' rows as a single instance\'s', async () => {
    const input = unique('uu-sodr');
    const scaled = topics('uu-sodr');
    const single = topics('uu-sodr-one');
    const group = unique('uu-sodr-group');
    created.push(input, ...Object.values(scaled), ...Object.values(single), `${group}-partials`, `${group}-repartition`);
    await kafka.log.createTopics([{ name: input, partitions: 4 }]);
    const scaledDb = await databases.create('uu_sodr');
    const singleDb = await databases.create('uu_sodr_one');
    // Every frame on a random partition: each user's frames on all of them, so the partials of a minute overlap only after the re-keying.
    const all = scaleOutFrames('unique-users-scale-out-durable-repartition', 60_000, { partitions: 4, keyed: false, perSecond: 60 });
    const members = ['member-a', 'member-b'].map((id) => startMember(input, scaled, group, ['--scale-out', '--repartition', '--instance-id', id, '--database-url', scaledDb.url]));
    const producer = kafka.log.producer();
    const chunk = Math.ceil(all.length / 10);
    for (let i = 0; i < all.length; i += chunk) {
      await producer.send(input, all.slice(i, i + chunk).map((f) => ({ value: f.text, partition: f.partition })));
      await sleep(1000);
    }
    await producer.close();
    const expected = await expectedWindows(kafka.log, input);
    await finish(kafka.log, members, scaled.output, expected.length);
    await finish(kafka.log, [startMember(input, single, unique('uu-sodr-one-group'), ['--database-url', singleDb.url])], single.output, expected.length);
    assertAsSingleInstance(scaled.output, single.output, expected);
    await databases.assertMinuteRows(scaledDb, singleDb, expected);
  });
});
