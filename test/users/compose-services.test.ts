import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { seededRandom } from '../../src/core/random.ts';
import { userRecords } from '../../src/core/user-records.ts';
import { userTrackerFrames } from '../../src/core/user-tracker-frames.ts';
import { KafkaLog } from '../../src/log/kafka.ts';
import { BIN } from '../helpers/cli.ts';
import { KAFKA_BROKERS } from '../helpers/env.ts';
import { tickflowCommands } from '../infra/compose-services.ts';
import { readAll, run, unique } from './helpers.ts';
import { referenceUniqueUsers } from './reference.ts';

/**
 * The replayer, unique-users and clean-users containers' exact command lines, run outside
 * Docker against the local Kafka (KAFKA_BROKERS from the environment, as in compose). Only
 * flags are appended, to give this run its own topics and groups (the last value of a flag
 * wins), and the replayer's /data file is swapped for a local one.
 */
describe('compose services replayer, unique-users, clean-users (their command lines, outside Docker)', () => {
  const commands = tickflowCommands();
  const env = { ...process.env, KAFKA_BROKERS: KAFKA_BROKERS.join(','), LOG_LEVEL: 'warn' };
  let dir: string;
  let log: KafkaLog;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tickflow-compose-users-'));
    log = new KafkaLog({ brokers: KAFKA_BROKERS });
  });
  after(async () => {
    await log.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Records a read_committed reader sees now (the services write in transactions: markers take offsets too). */
  const records = async (topic: string) => {
    let n = 0;
    try {
      for await (const batch of log.readRange({ topic })) n += batch.length;
    } catch {
      return 0; // not created yet
    }
    return n;
  };
  const waitForRecords = async (topic: string, count: number) => {
    for (let attempt = 0; attempt < 240; attempt++) {
      if ((await records(topic)) >= count) return;
      await sleep(250);
    }
    assert.fail(`${topic} did not reach ${count} records`);
  };
  const service = (argv: string[]) => spawn(process.execPath, [BIN, ...argv], { env, stdio: ['ignore', 'ignore', 'inherit'] });

  it('replayer → unique-users → minutes; replayer → clean-users → clean + dead letters', async () => {
    assert.deepEqual(commands.replayer.slice(0, 2), ['replay', '/data/user-tracker.jsonl']);
    const frames = userTrackerFrames({ random: seededRandom('compose-users'), perSecond: 50, users: 500, bytes: 500 });
    const texts = Array.from({ length: 3000 }, () => frames.next().value!.text);
    const framesFile = join(dir, 'user-tracker.jsonl');
    await writeFile(framesFile, `${texts.join('\n')}\n`);
    const tracker = unique('compose-user-tracker');
    const replayed = await run([commands.replayer[0], framesFile, ...commands.replayer.slice(2), '--output', tracker], { env });
    assert.equal(replayed.code, 0, replayed.stderr);

    const minutesTopic = unique('compose-unique-users');
    const uniqueUsers = service([...commands['unique-users'], '--input', tracker, '--output', minutesTopic, '--group', unique('compose-uu'), '--idle-timeout', '1s',
      '--late-topic', unique('compose-late'), '--dead-letter-topic', unique('compose-dead')]);

    const users = userRecords({ random: seededRandom('compose-users/records') });
    const usersTopic = unique('compose-users');
    const usersFile = join(dir, 'users.jsonl');
    await writeFile(usersFile, `${Array.from({ length: 500 }, () => JSON.stringify(users.next().value)).join('\n')}\n`);
    assert.equal((await run(['replay', usersFile, '--output', usersTopic], { env })).code, 0);
    const clean = unique('compose-users-clean');
    const dead = unique('compose-users-dead');
    const cleanUsers = service([...commands['clean-users'], '--input', usersTopic, '--output', clean, '--dead-letter-topic', dead, '--stats-topic', unique('compose-stats'),
      '--group', unique('compose-cu'), '--idle-timeout', '1s']);

    const tracked = (await readAll(log, tracker)).map((r) => ({ partition: r.partition, text: r.value }));
    const expected = referenceUniqueUsers(tracked);
    await waitForRecords(minutesTopic, expected.minutes.length);
    for (let attempt = 0; ; attempt++) {
      if ((await records(clean)) + (await records(dead)) >= 500) break;
      assert.ok(attempt < 240, 'clean-users did not conform all 500 records');
      await sleep(250);
    }
    const closed = [once(uniqueUsers, 'close'), once(cleanUsers, 'close')];
    uniqueUsers.kill('SIGTERM');
    cleanUsers.kill('SIGTERM');
    assert.deepEqual(await Promise.all(closed), [[0, null], [0, null]], 'both stop cleanly on SIGTERM');
    assert.deepEqual((await readAll(log, minutesTopic)).map((r) => JSON.parse(r.value)), expected.minutes);
    assert.equal((await readAll(log, clean)).length + (await readAll(log, dead)).length, 500);
  });
});
