/**
 * The embedded log on disk (the CLI's default): the log contract with a restart, a torn
 * tail after a crash, retention, and the lock on the data dir.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isTickflowError } from '../../src/core/errors.ts';
import { DiskLog } from '../../src/log/disk.ts';
import type { Log, LogRecord } from '../../src/log/types.ts';
import { logContract } from './contract.ts';

const root = mkdtempSync(join(tmpdir(), 'tickflow-disk-log-'));
after(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const freshDir = () => join(root, `log-${++dirs}`);

const reopened = new WeakMap<Log, string>();
logContract({
  name: 'embedded on disk',
  groupTimeoutMs: 2000,
  open: async () => {
    const dir = freshDir();
    const log = new DiskLog(dir);
    reopened.set(log, dir);
    return log;
  },
  reopen: async (log) => {
    const dir = reopened.get(log)!;
    await log.close();
    const again = new DiskLog(dir);
    reopened.set(again, dir);
    return again;
  },
});

function warnings() {
  const seen: Array<{ details: Record<string, unknown>; message: string }> = [];
  return { seen, logger: { warn: (details: object, message: string) => seen.push({ details: details as Record<string, unknown>, message }) } };
}

async function readAll(log: Log, topic: string): Promise<LogRecord[]> {
  const out: LogRecord[] = [];
  for await (const batch of log.readRange({ topic })) out.push(...batch);
  return out;
}

const segments = (dir: string, topic: string, partition = 0) => readdirSync(join(dir, 'topics', topic, String(partition))).filter((f) => f.endsWith('.seg')).sort();

describe('embedded log on disk: a crash in the middle of a write', () => {
  for (const damage of ['cut', 'flipped'] as const) {
    it(`cuts a torn last batch (${damage === 'cut' ? 'incomplete' : 'bad CRC'}) on open, keeps every earlier one, and goes on from there`, async () => {
      const dir = freshDir();
      const log = new DiskLog(dir);
      await log.createTopics([{ name: 't', partitions: 1 }]);
      const producer = log.producer();
      for (let batch = 0; batch < 3; batch++) await producer.send('t', Array.from({ length: 10 }, (_, i) => ({ value: `b${batch}-${i}` })));
      await log.close();
      const [file] = segments(dir, 't');
      const path = join(dir, 'topics', 't', '0', file);
      const size = statSync(path).size;
      const lastBatch = size / 3; // three equal batches
      if (damage === 'cut') truncateSync(path, size - 7);
      else {
        const bytes = readFileSync(path);
        bytes[size - 3] ^= 0xff;
        writeFileSync(path, bytes);
      }
      appendFileSync(path, Buffer.alloc(0));

      const { seen, logger } = warnings();
      const reopened = new DiskLog(dir, { logger });
      try {
        assert.equal(seen.length, 1);
        assert.match(seen[0].message, /cut a torn tail/);
        assert.equal(seen[0].details.keptBytes, size - lastBatch);
        assert.equal(statSync(path).size, size - lastBatch);
        assert.deepEqual(await reopened.offsets('t'), [{ partition: 0, earliest: 0n, latest: 20n }]);
        const expected = [0, 1].flatMap((b) => Array.from({ length: 10 }, (_, i) => `b${b}-${i}`));
        assert.deepEqual((await readAll(reopened, 't')).map((r) => r.value!.toString()), expected);
        const again = reopened.producer();
        await again.send('t', [{ value: 'next' }]);
        const all = await readAll(reopened, 't');
        assert.deepEqual([all.length, all[20].offset, all[20].value!.toString()], [21, 20n, 'next']);
      } finally {
        await reopened.close();
      }
      const third = new DiskLog(dir);
      assert.equal((await readAll(third, 't')).length, 21);
      await third.close();
    });
  }
});

describe('embedded log on disk: retention', () => {
  it('rolls segments at segment.bytes, deletes the oldest past retention.bytes, and resumes an older position at the log start with a warning', async () => {
    const dir = freshDir();
    const { seen, logger } = warnings();
    const log = new DiskLog(dir, { logger });
    try {
      await log.createTopics([{ name: 'r', partitions: 1, configs: { 'segment.bytes': '4096', 'retention.bytes': '16384' } }]);
      const producer = log.producer();
      const value = 'x'.repeat(100); // a 147-byte record, 168 with its batch
      for (let i = 0; i < 1000; i++) await producer.send('r', [{ value: `${String(i).padStart(4, '0')}${value}` }]);
      const files = segments(dir, 'r');
      const bytes = files.reduce((n, f) => n + statSync(join(dir, 'topics', 'r', '0', f)).size, 0);
      assert.ok(bytes >= 16384 && bytes < 16384 + 4096 + 168, `${bytes} bytes kept`);
      const [{ earliest, latest }] = await log.offsets('r');
      assert.equal(latest, 1000n);
      assert.equal(earliest, BigInt(Number(files[0].slice(0, 20))), 'the log starts at the oldest segment kept');
      const kept = await readAll(log, 'r');
      assert.deepEqual(kept.map((r) => Number(r.value!.toString().slice(0, 4))), Array.from({ length: Number(latest - earliest) }, (_, i) => Number(earliest) + i));

      const consumer = log.subscribe({ group: 'g', topics: ['r'], onAssign: async () => [{ topic: 'r', partition: 0, offset: 0n }] });
      const read: LogRecord[] = [];
      for await (const batch of consumer) {
        read.push(...batch.records);
        if (read.length >= kept.length) break;
      }
      await consumer.close();
      assert.equal(read[0].offset, earliest);
      assert.equal(read.length, kept.length);
      const warning = seen.find((w) => /before the log start/.test(w.message));
      assert.deepEqual(warning?.details, { topic: 'r', partition: 0, position: 0, logStart: Number(earliest), skipped: Number(earliest) });
    } finally {
      await log.close();
    }
  });

  it('refuses a retention that is not a positive number of bytes, naming it', async () => {
    const log = new DiskLog(freshDir());
    try {
      await assert.rejects(log.createTopics([{ name: 'bad', configs: { 'retention.bytes': '-1' } }]), (e) => isTickflowError(e, 'BAD_CONFIG') && /retention.bytes must be a positive number of bytes, got "-1"/.test(e.message));
      await assert.rejects(log.createTopics([{ name: 'a/b' }]), (e) => isTickflowError(e, 'BAD_CONFIG') && /topic name "a\/b"/.test(e.message));
      assert.deepEqual(await log.listTopics(), []);
    } finally {
      await log.close();
    }
  });
});

describe('embedded log on disk: one process at a time', () => {
  it('refuses a second open in this process, and another process while the lock is held, naming the owner', async () => {
    const dir = freshDir();
    const log = new DiskLog(dir);
    assert.throws(() => new DiskLog(dir), (e) => isTickflowError(e, 'LOG_ERROR') && /already open in this process/.test(e.message));
    await log.close();
    const other = spawn('sleep', ['30']);
    try {
      writeFileSync(`${dir}.lock`, `${other.pid}\ntickflow up\n`);
      assert.throws(() => new DiskLog(dir), (e) => isTickflowError(e, 'LOG_ERROR') && e.message === `embedded log ${dir} is in use by process ${other.pid} (tickflow up): stop it, or give this command another --data-dir, or --brokers`);
    } finally {
      other.kill('SIGKILL');
      await new Promise((r) => other.once('close', r));
    }
    const again = new DiskLog(dir); // the owner died: its lock is stale
    assert.equal(readFileSync(`${dir}.lock`, 'utf8').split('\n')[0], String(process.pid));
    await again.close();
  });
});
