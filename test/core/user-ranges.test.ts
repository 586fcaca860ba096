import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GRANULARITIES } from '../../src/core/calendar-windows.ts';
import { ExactDistinct, HyperLogLog } from '../../src/core/hyperloglog.ts';
import { seededRandom } from '../../src/core/random.ts';
import { encodeSketch } from '../../src/core/sketch-bytes.ts';
import { countUserRange, planUserRange } from '../../src/core/user-ranges.ts';
import type { StoredSketch, UserRangePlan } from '../../src/core/user-ranges.ts';
import { minuteSketchRow } from '../../src/core/user-sketches.ts';

const at = (iso: string) => Date.parse(iso);
const unix = (iso: string) => Date.parse(iso) / 1000;

function plan(from: string, to: string, granularity: (typeof GRANULARITIES)[number], timeZone?: string, maxBuckets = 10_000): UserRangePlan {
  const result = planUserRange({ fromMs: at(from), toMs: at(to), granularity, timeZone, maxBuckets });
  assert.ok(result, 'within the bucket limit');
  return result;
}

describe('planUserRange: buckets and the stored rows that make them', () => {
  it('a UTC day is one day row; around it the fewest hours, quarters and minutes', () => {
    const p = plan('2024-05-01T22:10:00Z', '2024-05-03T01:30:00Z', 'day');
    assert.deepEqual(p.buckets, [
      { window: '2024-05-01T00:00:00Z', start: unix('2024-05-01T22:10:00Z'), end: unix('2024-05-02T00:00:00Z') },
      { window: '2024-05-02T00:00:00Z', start: unix('2024-05-02T00:00:00Z'), end: unix('2024-05-03T00:00:00Z') },
      { window: '2024-05-03T00:00:00Z', start: unix('2024-05-03T00:00:00Z'), end: unix('2024-05-03T01:30:00Z') },
    ]);
    assert.deepEqual(p.ranges, [
      { seconds: 60, start: unix('2024-05-01T22:10:00Z'), end: unix('2024-05-01T22:15:00Z') },
      { seconds: 900, start: unix('2024-05-01T22:15:00Z'), end: unix('2024-05-01T23:00:00Z') },
      { seconds: 900, start: unix('2024-05-03T01:00:00Z'), end: unix('2024-05-03T01:30:00Z') },
      { seconds: 3600, start: unix('2024-05-01T23:00:00Z'), end: unix('2024-05-02T00:00:00Z') },
      { seconds: 3600, start: unix('2024-05-03T00:00:00Z'), end: unix('2024-05-03T01:00:00Z') },
      { seconds: 86400, start: unix('2024-05-02T00:00:00Z'), end: unix('2024-05-03T00:00:00Z') },
    ]);
    assert.equal(p.timeZone, 'UTC');
  });

  it('a day in Europe/Zurich is 10 rows (hours and 3-hour blocks), in Asia/Kolkata 13 (quarters too), a UTC month 31', () => {
    const rowsBySpan = (p: UserRangePlan) => [60, 900, 3600, 10800, 86400].map((span) => p.ranges.filter((r) => r.seconds === span).reduce((n, r) => n + (r.end - r.start) / span, 0));
    const zurich = plan('2024-03-30T00:00:00+01:00', '2024-04-01T00:00:00+02:00', 'day', 'Europe/Zurich');
    assert.deepEqual(zurich.buckets.map((b) => [b.window, (b.end - b.start) / 3600]), [['2024-03-30T00:00:00+01:00', 24], ['2024-03-31T00:00:00+01:00', 23]]);
    assert.deepEqual(rowsBySpan(zurich), [0, 0, 5, 14, 0], 'day 1: 1 + 7 + 2; day 2 (23 hours): 1 + 7 + 1');
    const kolkata = plan('2024-05-02T00:00:00+05:30', '2024-05-03T00:00:00+05:30', 'day', 'Asia/Kolkata');
    assert.equal(kolkata.buckets.length, 1);
    assert.deepEqual(rowsBySpan(kolkata), [0, 4, 2, 7, 0], '18:30 to 18:30 UTC: quarters 18:30–19:00 and 18:00–18:30, hours 19–21, blocks 21–24 and 0–18');
    const kathmandu = plan('2024-05-02T00:00:00+05:45', '2024-05-03T00:00:00+05:45', 'day', 'Asia/Kathmandu');
    assert.deepEqual(rowsBySpan(kathmandu), [0, 4, 2, 7, 0], '18:15 to 18:15 UTC: quarters 18:15–19:00 and 18:00–18:15, hours 19–21, blocks 21–24 and 0–18');
    assert.deepEqual(rowsBySpan(plan('2024-05-01', '2024-06-01', 'month')), [0, 0, 0, 0, 31]);
  });

  it('minutes and hours stay UTC in a zone; weeks run Monday to Monday, months and years by the calendar', () => {
    const hours = plan('2024-05-01T10:20:00Z', '2024-05-01T12:00:00Z', 'hour', 'Asia/Kolkata');
    assert.deepEqual(hours.buckets.map((b) => b.window), ['2024-05-01T10:00:00Z', '2024-05-01T11:00:00Z']);
    const weeks = plan('2024-05-01T00:00:00Z', '2024-05-20T00:00:00Z', 'week');
    assert.deepEqual(weeks.buckets.map((b) => b.window), ['2024-04-29T00:00:00Z', '2024-05-06T00:00:00Z', '2024-05-13T00:00:00Z']);
    assert.equal(weeks.buckets[0].start, unix('2024-05-01T00:00:00Z'), 'cut to the range');
    const months = plan('2024-01-15T00:00:00Z', '2024-03-02T00:00:00Z', 'month');
    assert.deepEqual(months.buckets.map((b) => [b.window, b.end - b.start]), [['2024-01-01T00:00:00Z', 17 * 86400], ['2024-02-01T00:00:00Z', 29 * 86400], ['2024-03-01T00:00:00Z', 86400]]);
    const years = plan('2023-06-01T00:00:00+02:00', '2025-01-01T00:00:00+01:00', 'year', 'Europe/Zurich');
    assert.deepEqual(years.buckets.map((b) => b.window), ['2023-01-01T00:00:00+01:00', '2024-01-01T00:00:00+01:00']);
  });

  it('a minute counts when its start lies in [from, to): times inside a minute round up', () => {
    const p = plan('2024-05-01T12:00:30Z', '2024-05-01T12:03:00.001Z', 'minute');
    assert.deepEqual(p.buckets.map((b) => b.window), ['2024-05-01T12:01:00Z', '2024-05-01T12:02:00Z', '2024-05-01T12:03:00Z']);
    assert.deepEqual([p.start, p.end], [unix('2024-05-01T12:01:00Z'), unix('2024-05-01T12:04:00Z')]);
    const none = plan('2024-05-01T12:00:30Z', '2024-05-01T12:00:50Z', 'hour');
    assert.deepEqual([none.buckets, none.ranges, none.start === none.end], [[], [], true]);
  });

  it('null beyond the bucket limit, the limit itself is fine', () => {
    assert.equal(planUserRange({ fromMs: at('2024-05-01T00:00:00Z'), toMs: at('2024-05-02T00:00:01Z'), granularity: 'minute', maxBuckets: 1440 }), null);
    assert.equal(planUserRange({ fromMs: at('2024-05-01T00:00:00Z'), toMs: at('2024-05-02T00:00:00Z'), granularity: 'minute', maxBuckets: 1440 })?.buckets.length, 1440);
    assert.throws(() => planUserRange({ fromMs: 0, toMs: 1, granularity: 'day', timeZone: 'Mars/Olympus', maxBuckets: 10 }), /unknown time zone "Mars\/Olympus"/);
  });

  it('on random ranges, granularities and zones: the buckets tile the range and the rows read cover each minute once, aligned to their span', () => {
    const random = seededRandom('user-ranges');
    const zones = [undefined, 'Europe/Zurich', 'Asia/Kolkata', 'Asia/Kathmandu', 'America/St_Johns', 'Australia/Lord_Howe', 'Pacific/Kiritimati'];
    for (let i = 0; i < 400; i++) {
      const granularity = random.pick(GRANULARITIES);
      const span = { minute: 3 * 3600, hour: 9 * 86400, day: 120 * 86400, week: 400 * 86400, month: 800 * 86400, year: 3000 * 86400 }[granularity];
      const fromMs = at('1995-01-01T00:00:00Z') + Math.floor(random.next() * 40 * 365 * 86400) * 1000 + random.int(0, 999);
      const toMs = fromMs + random.int(1, span) * 1000;
      const p = planUserRange({ fromMs, toMs, granularity, timeZone: random.pick(zones), maxBuckets: 100_000 })!;
      assert.equal(p.start, Math.ceil(fromMs / 60_000) * 60);
      assert.equal(p.end, Math.ceil(toMs / 60_000) * 60);
      let t = p.start;
      for (const b of p.buckets) {
        assert.equal(b.start, t, `${granularity}: bucket ${b.window} starts where the one before ended`);
        assert.ok(b.end > b.start, `${granularity}: bucket ${b.window} holds minutes`);
        t = b.end;
      }
      if (p.start < p.end) assert.equal(t, p.end);
      for (const r of p.ranges) {
        assert.ok(r.start % r.seconds === 0 && r.end % r.seconds === 0 && r.end > r.start, JSON.stringify(r));
        // Every row the range selects lies within one bucket (ranges of neighbouring buckets are joined).
        for (let row = r.start; row < r.end; row += r.seconds) {
          let lo = 0;
          let hi = p.buckets.length - 1;
          while (lo < hi) {
            const mid = (lo + hi + 1) >> 1;
            if (p.buckets[mid].start <= row) lo = mid;
            else hi = mid - 1;
          }
          const b = p.buckets[lo];
          assert.ok(b.start <= row && row + r.seconds <= b.end, `the ${r.seconds} s row at ${row} lies within one bucket`);
        }
      }
      // Sorted by start, the ranges of all spans chain from the first minute to the end: each minute once.
      let covered = p.start;
      for (const r of [...p.ranges].sort((a, b) => a.start - b.start)) {
        assert.equal(r.start, covered, `${granularity}: the ranges leave no gap and no overlap`);
        covered = r.end;
      }
      assert.equal(covered, p.end);
    }
  });
});

describe('countUserRange', () => {
  const T = unix('2024-05-01T00:00:00Z');
  const row = (seconds: 60 | 3600 | 86400, start: number, users: string[], extra: Partial<StoredSketch> = {}): StoredSketch => {
    const exact = new ExactDistinct();
    for (const u of users) exact.add(u);
    const m = minuteSketchRow({ start: Math.floor(start / 60) * 60, frames: users.length, late: 1 }, exact);
    return { seconds, start, minutes: 1, frames: m.frames, late: m.late, exactUsers: m.exactUsers, sketch: m.sketch, ...extra };
  };

  it('a single exact minute is exact; several are estimates with the standard error of their precision; no data is zero, exact', () => {
    const p = plan('2024-05-01T00:00:00Z', '2024-05-01T00:04:00Z', 'minute');
    const rows = [row(60, T, ['a', 'b', 'c']), row(60, T + 60, ['c', 'd'])];
    const counted = countUserRange(p, rows);
    assert.deepEqual(counted.buckets, [
      { window: '2024-05-01T00:00:00Z', start: T, end: T + 60, uniqueUsers: 3, frames: 3, late: 1, minutes: 1, approximate: false, standardError: 0 },
      { window: '2024-05-01T00:01:00Z', start: T + 60, end: T + 120, uniqueUsers: 2, frames: 2, late: 1, minutes: 1, approximate: false, standardError: 0 },
      { window: '2024-05-01T00:02:00Z', start: T + 120, end: T + 180, uniqueUsers: 0, frames: 0, late: 0, minutes: 0, approximate: false, standardError: 0 },
      { window: '2024-05-01T00:03:00Z', start: T + 180, end: T + 240, uniqueUsers: 0, frames: 0, late: 0, minutes: 0, approximate: false, standardError: 0 },
    ]);
    assert.deepEqual(counted.total, { start: T, end: T + 240, uniqueUsers: 4, frames: 5, late: 2, minutes: 2, approximate: true, standardError: 1.04 / 64 });
    assert.equal(counted.precision, 12);
  });

  it('an approximate minute, or a rollup of several, is an estimate; a rollup of one exact minute is exact', () => {
    const p = plan('2024-05-01T00:00:00Z', '2024-05-01T03:00:00Z', 'hour');
    const sketch = new HyperLogLog(14);
    for (let i = 0; i < 1000; i++) sketch.add(`h${i}`);
    const counted = countUserRange(p, [
      { ...row(3600, T, []), minutes: 7, exactUsers: null, sketch: encodeSketch(sketch) },
      { ...row(3600, T + 3600, ['x', 'y']), minutes: 1 },
    ]);
    assert.deepEqual(counted.buckets.map((b) => [b.approximate, b.minutes]), [[true, 7], [false, 1], [false, 0]]);
    assert.equal(counted.buckets[1].uniqueUsers, 2);
    assert.equal(counted.buckets[0].standardError, 1.04 / 64, 'merged at the lowest precision read (12, from the exact minute)');
    assert.ok(Math.abs(counted.buckets[0].uniqueUsers - 1000) < 3 * 0.0163 * 1000, String(counted.buckets[0].uniqueUsers));
  });

  it('a row outside the plan is an error, never silently counted', () => {
    const p = plan('2024-05-01T00:00:00Z', '2024-05-01T00:02:00Z', 'minute');
    assert.throws(() => countUserRange(p, [row(60, T + 600, ['a'])]), /starting at 1714522200 lies after the range/);
  });
});
