import { setTimeout as sleep } from 'node:timers/promises';
import type { RecordToProduce } from '../log/types.ts';

/** Wall clock, epoch ms, and a way to wait on it; injectable for tests. */
export interface PacingClock {
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: PacingClock = {
  now: () => Date.now(),
  sleep: (ms, signal) => sleep(ms, undefined, { signal }).catch(() => undefined),
};

export interface PacedSendOptions {
  /** Records per second, evenly spaced. */
  rate: number;
  /** Stop after this many records (Infinity: until aborted). */
  limit: number;
  /** Wall-clock time of record 0 (epoch ms), read from `clock` by the caller. */
  started: number;
  clock: PacingClock;
  signal?: AbortSignal;
  /** Record i; called once per record, in order. */
  next(i: number): RecordToProduce;
  send(batch: RecordToProduce[]): Promise<void>;
  onSent?: (sent: number) => void;
}

/** Catch-up after a stall is sent in batches of at most this many records. */
const MAX_BATCH = 5000;

/**
 * Sends records on an absolute schedule: record i is due at started + i/rate, so the rate
 * never drifts (sleeping a fixed time per record would add the send time every time).
 * After a stall (a slow broker) the overdue records go out at once and the schedule goes
 * on. Returns how many were sent: `limit`, or fewer when aborted.
 */
export async function sendPaced(options: PacedSendOptions): Promise<number> {
  const { clock, started, limit } = options;
  const periodMs = 1000 / options.rate;
  let sent = 0;
  while (sent < limit && !options.signal?.aborted) {
    const due = Math.min(limit, Math.floor((clock.now() - started) / periodMs) + 1, sent + MAX_BATCH);
    if (due > sent) {
      const batch: RecordToProduce[] = [];
      for (let i = sent; i < due; i++) batch.push(options.next(i));
      await options.send(batch);
      sent = due;
      options.onSent?.(sent);
      continue;
    }
    const wait = started + sent * periodMs - clock.now();
    if (wait > 0) await clock.sleep(wait, options.signal);
  }
  return sent;
}
