/**
 * The unique-users service on the runtime, on the embedded log: idle partitions and
 * partitions that cannot be fetched (a lost leader), restarts. In process, no broker.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { MemoryLog } from '../../src/log/memory.ts';
import { runUniqueUsers } from '../../src/pipelines/unique-users.ts';
import type { UniqueUsersConfig, UniqueUsersSummary } from '../../src/pipelines/unique-users.ts';

const T0 = 1_468_244_340; // a minute boundary
const PARTITIONS = 3;

function config(overrides: Partial<UniqueUsersConfig> = {}): UniqueUsersConfig {
  return {
    input: 'frames', output: 'minutes', lateTopic: 'late', deadLetterTopic: 'dead', group: 'uu', untilEnd: false,
    allowedLatenessMs: 5000, maxTimeSkewMs: 600_000, idleTimeoutMs: 300, granularities: ['minute'], timeZone: null, approx: false, maxExactBytes: 64 << 20, precision: 14, strict: false, partitions: 1, threads: 1,
    format: 'auto', maxRecordBytes: 1 << 20, ...overrides,
  };
}

/** Three minutes of frames on every partition, each partition with users of its own. */
function frames(): Array<{ partition: number; uid: string; ts: number }> {
  const out: Array<{ partition: number; uid: string; ts: number }> = [];
  for (let partition = 0; partition < PARTITIONS; partition++) {
    for (let t = 0; t < 180; t += 2) out.push({ partition, uid: `p${partition}-u${t % 14}`, ts: T0 + t });
  }
  return out;
}

function expectedMinutes(all: ReturnType<typeof frames>) {
  const minutes = new Map<number, { users: Set<string>; frames: number }>();
  for (const f of all) {
    const start = Math.floor(f.ts / 60) * 60;
    const m = minutes.get(start) ?? { users: new Set(), frames: 0 };
    m.users.add(f.uid);
    m.frames++;
    minutes.set(start, m);
  }
  return [...minutes].sort(([a], [b]) => a - b).map(([start, m]) => ({ start, uniqueUsers: m.users.size, frames: m.frames }));
}

async function minutesIn(log: MemoryLog, topic: string) {
  const out: Array<{ start: number; uniqueUsers: number; frames: number }> = [];
  for await (const batch of log.readRange({ topic })) {
    for (const r of batch) {
      const { start, uniqueUsers, frames: n } = JSON.parse(r.value!.toString('utf8')) as { start: number; uniqueUsers: number; frames: number };
      out.push({ start, uniqueUsers, frames: n });
    }
  }
  return out;
}

function service(log: MemoryLog, overrides: Partial<UniqueUsersConfig> = {}) {
  const stop = new AbortController();
  const stdout = new Writable({ write: (_chunk, _encoding, done) => done() });
  const done: Promise<UniqueUsersSummary> = runUniqueUsers(config(overrides), { log, logger: pino({ level: 'silent' }), signal: stop.signal, stdout });
  return { done, stop: () => stop.abort() };
}

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe('unique-users service on the runtime (embedded log)', () => {
  it('a partition that cannot be fetched is not idle: no minute closes without its users, none twice once it is back', async () => {
    const log = new MemoryLog();
    await log.createTopics([{ name: 'frames', partitions: PARTITIONS }]);
    const all = frames();
    const producer = log.producer();
    for (const f of all) await producer.send('frames', [{ value: JSON.stringify({ uid: f.uid, ts: f.ts }), partition: f.partition }]);
    // Partition 2's leader is lost: its frames are in the log but cannot be fetched.
    log.setReachable('frames', 2, false);
    const running = service(log);
    try {
      await sleep(2000); // partitions 0 and 1 are read at once, then idle for many idle timeouts; partition 2 is only unreachable
      assert.deepEqual(await minutesIn(log, 'minutes'), [], 'no minute is emitted while partition 2 cannot be fetched');
      log.setReachable('frames', 2, true);
      const expected = expectedMinutes(all);
      await until(async () => (await minutesIn(log, 'minutes')).length >= expected.length, 'every minute');
      await sleep(700);
      assert.deepEqual(await minutesIn(log, 'minutes'), expected, 'every minute once, with every partition\'s users');
    } finally {
      running.stop();
    }
    const summary = await running.done;
    assert.deepEqual([summary.frames, summary.counted, summary.late, summary.minutes], [all.length, all.length, 0, 3]);
  });

  it('a restart with minutes open emits each minute once, complete (offsets derived from the output)', async () => {
    const log = new MemoryLog();
    await log.createTopics([{ name: 'frames', partitions: PARTITIONS }]);
    const all = frames();
    const producer = log.producer();
    const send = async (list: typeof all) => {
      for (const f of list) await producer.send('frames', [{ value: JSON.stringify({ uid: f.uid, ts: f.ts }), partition: f.partition }]);
    };
    // The first two minutes and a part of the third: the third stays open.
    await send(all.filter((f) => f.ts < T0 + 150));
    const first = service(log, { idleTimeoutMs: 60_000 });
    try {
      await until(async () => (await minutesIn(log, 'minutes')).length === 2, 'the closed minutes');
    } finally {
      first.stop();
      await first.done;
    }
    const committed = await log.committed('uu', 'frames');
    assert.deepEqual(committed, new Map([[0, 60n], [1, 60n], [2, 60n]]), 'committed: the first frame of the open minute on every partition, not the read position (75)');
    await send(all.filter((f) => f.ts >= T0 + 150));
    const second = service(log);
    try {
      await until(async () => (await minutesIn(log, 'minutes')).length >= 3, 'the last minute');
    } finally {
      second.stop();
    }
    const summary = await second.done;
    assert.deepEqual(await minutesIn(log, 'minutes'), expectedMinutes(all));
    assert.deepEqual([summary.frames, summary.alreadyEmitted, summary.minutes], [90, 0, 1], 'the second run re-read only the open minute');
  });

  it('minutes and hours: a restart with an hour open re-reads from its first frame and counts in it the frames of minutes already emitted; every window once', async () => {
    const log = new MemoryLog();
    await log.createTopics([{ name: 'frames', partitions: PARTITIONS }]);
    const H = Math.ceil(T0 / 3600) * 3600; // an hour boundary
    const all: Array<{ partition: number; uid: string; ts: number }> = [];
    for (let partition = 0; partition < PARTITIONS; partition++) {
      for (let t = -120; t < 150; t += 2) all.push({ partition, uid: `p${partition}-u${(t + 120) % 22}`, ts: H + t });
    }
    // Then three frames an hour later on every partition: the stream moves on and the hour H closes.
    const later = Array.from({ length: PARTITIONS }, (_, partition) => [3606, 3608, 3610].map((t) => ({ partition, uid: `late-${partition}`, ts: H + t }))).flat();
    const producer = log.producer();
    const send = async (list: typeof all) => {
      for (const f of list) await producer.send('frames', [{ value: JSON.stringify({ uid: f.uid, ts: f.ts }), partition: f.partition }]);
    };
    const records = async () => {
      const out: Array<{ granularity: string; start: number; uniqueUsers: number; frames: number }> = [];
      for await (const batch of log.readRange({ topic: 'minutes' })) {
        for (const r of batch) {
          const { granularity, start, uniqueUsers, frames: n } = JSON.parse(r.value!.toString('utf8')) as { granularity: string; start: number; uniqueUsers: number; frames: number };
          out.push({ granularity, start, uniqueUsers, frames: n });
        }
      }
      return out;
    };
    const granularities = ['minute', 'hour'] as const;
    await send(all.filter((f) => f.ts < H + 90));
    const first = service(log, { idleTimeoutMs: 60_000, granularities });
    try {
      // Minutes H−120, H−60 and the hour before H (ending with it), then the minute H.
      await until(async () => (await records()).length === 4, 'the closed windows');
    } finally {
      first.stop();
      await first.done;
    }
    assert.deepEqual((await records()).map((r) => [r.granularity, r.start - H]), [['minute', -120], ['minute', -60], ['hour', -3600], ['minute', 0]]);
    assert.deepEqual(await log.committed('uu', 'frames'), new Map([[0, 60n], [1, 60n], [2, 60n]]), 'committed: the first frame of the open hour H, below the open minute H+60');
    await send([...all.filter((f) => f.ts >= H + 90), ...later]);
    const second = service(log, { granularities });
    try {
      await until(async () => (await records()).some((r) => r.granularity === 'hour' && r.start === H), 'the hour H');
    } finally {
      second.stop();
    }
    const summary = await second.done;
    const expected = (granularity: string, size: number) => {
      const windows = new Map<number, { users: Set<string>; frames: number }>();
      for (const f of [...all, ...later]) {
        const start = Math.floor(f.ts / size) * size;
        const w = windows.get(start) ?? { users: new Set(), frames: 0 };
        w.users.add(f.uid);
        w.frames++;
        windows.set(start, w);
      }
      return [...windows].map(([start, w]) => ({ granularity, start, uniqueUsers: w.users.size, frames: w.frames }));
    };
    const got = await records();
    const byKey = (list: typeof got) => list.map((r) => JSON.stringify(r)).sort();
    // Everything but the last minute (flushed once the stream is idle, or not yet) and its hour (open: the watermark is not past it) exactly once.
    const last = (r: { start: number }) => r.start === H + 3600;
    assert.ok(!got.some((r) => r.granularity === 'hour' && last(r)), 'an idle stream does not flush an hour');
    assert.deepEqual(byKey(got.filter((r) => !last(r))), byKey([...expected('minute', 60), ...expected('hour', 3600)].filter((r) => !last(r))), 'every window once, the hour H with the frames of its minute H emitted before the restart');
    assert.equal(summary.alreadyEmitted, 0, 'frames of the minute H still counted, in the hour');
  });

  it('a frame the event-time guard holds keeps its offset needed: after a restart it is re-read and sent as implausible-time, the minutes stay exact', async () => {
    const log = new MemoryLog();
    await log.createTopics([{ name: 'frames', partitions: PARTITIONS }]);
    const all = frames();
    const producer = log.producer();
    const send = async (list: Array<{ partition: number; uid: string; ts: number }>) => {
      for (const f of list) await producer.send('frames', [{ value: JSON.stringify({ uid: f.uid, ts: f.ts }), partition: f.partition }]);
    };
    // Partition 0: six frames (offsets 0..5), then one whose ts has bit 30 flipped (offset 6: 34 years behind).
    const flipped = { partition: 0, uid: 'flipped', ts: (T0 + 12) ^ (1 << 30) };
    await send(all.filter((f) => f.partition === 0 && f.ts <= T0 + 10));
    await send([flipped]);
    await send(all.filter((f) => f.ts < T0 + 150 && !(f.partition === 0 && f.ts <= T0 + 10)));
    const first = service(log, { idleTimeoutMs: 60_000 });
    try {
      await until(async () => (await minutesIn(log, 'minutes')).length === 2, 'the closed minutes');
    } finally {
      first.stop();
      await first.done;
    }
    assert.deepEqual(await log.committed('uu', 'frames'), new Map([[0, 6n], [1, 60n], [2, 60n]]), 'partition 0: the held frame\'s offset, below the open minute\'s (61)');
    await send(all.filter((f) => f.ts >= T0 + 150));
    const second = service(log);
    try {
      await until(async () => (await minutesIn(log, 'minutes')).length >= 3, 'the last minute');
    } finally {
      second.stop();
    }
    const summary = await second.done;
    assert.deepEqual(await minutesIn(log, 'minutes'), expectedMinutes(all), 'every minute once, without the flipped frame');
    const side: Array<{ reason: string; offset: string; skew: number }> = [];
    for await (const batch of log.readRange({ topic: 'late' })) {
      for (const r of batch) {
        const header = (name: string) => r.headers.find(([k]) => k === name)?.[1].toString('utf8') ?? '';
        side.push({ reason: header('x-reason'), offset: `${header('x-source-partition')}@${header('x-source-offset')}`, skew: Number(header('x-time-skew-ms')) });
      }
    }
    assert.deepEqual(side.map(({ reason, offset }) => ({ reason, offset })), [{ reason: 'implausible-time', offset: '0@6' }], 'the held frame, decided after the restart');
    assert.ok(side[0].skew < -34 * 365 * 86_400_000, `${side[0].skew} ms behind`);
    assert.deepEqual([summary.implausible, summary.late], [1, 0]);
  });
});
