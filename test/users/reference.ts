/**
 * An independent, deliberately naive unique-users: JSON.parse every frame, take the root
 * uid/ts, walk each partition in offset order keeping its stream time — the newest ts
 * that the two frames after it agree with (each within [ts − lateness, ts + max skew]),
 * looked up by reading ahead in the list — call a frame late when it is more than the
 * lateness behind that, and count distinct uids per minute in Sets. The partition's frames
 * before its first agreement are judged when it comes. No scanner, no guard, no watermark
 * classes, no windows: what the pipeline must agree with, for streams without far-off
 * times (those are the guard's, tested against untouched frames).
 */

export interface ReferenceFrame {
  partition: number;
  text: string;
}

export interface ReferenceMinute {
  granularity: 'minute';
  window: string;
  minute: string;
  start: number;
  end: number;
  uniqueUsers: number;
  frames: number;
  late: number;
}

export type ReferenceGranularity = 'minute' | 'hour' | 'day' | 'week' | 'month' | 'year';

export interface ReferenceWindow {
  granularity: ReferenceGranularity;
  window: string;
  start: number;
  end: number;
  uniqueUsers: number;
  frames: number;
  late: number;
  minute?: string;
}

export interface ReferenceResult {
  minutes: ReferenceMinute[];
  /** Late frames, in input order per partition: partition, index in the input, seconds behind. */
  late: Array<{ partition: number; index: number; lateBySeconds: number; uid: string }>;
  invalid: number;
  /** Frames of a partition that never agreed on a time, farther than the skew from the median of its times. */
  implausible: number;
  /** Each partition's stream time at the end: its newest ts that the two frames after it agree with. */
  streamTimes: Map<number, number>;
  /** The on-time frames (uid, ts), and the late ones with the watermark (stream time − lateness) they were judged against. */
  onTime: Array<{ uid: string; ts: number }>;
  judgedLate: Array<{ ts: number; watermark: number }>;
}

const NUMBER_TEXT = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/;

export function rootUidTs(text: string): { uid: string; ts: number } | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return null;
  const { uid, ts } = value as { uid?: unknown; ts?: unknown };
  if (typeof uid !== 'string' || uid === '') return null;
  const seconds = typeof ts === 'number' ? ts : typeof ts === 'string' && NUMBER_TEXT.test(ts) ? Number(ts) : Number.NaN;
  if (!(Math.abs(seconds) <= 8.64e12)) return null;
  return { uid, ts: seconds };
}

export function referenceUniqueUsers(frames: readonly ReferenceFrame[], latenessSeconds = 5, maxSkewSeconds = 600): ReferenceResult {
  // Each partition's valid times, in order, to read ahead.
  const valid = frames.map((frame, index) => ({ frame, index, fields: rootUidTs(frame.text) }));
  const byPartition = new Map<number, number[]>();
  for (const { frame, fields } of valid) {
    if (!fields) continue;
    if (!byPartition.has(frame.partition)) byPartition.set(frame.partition, []);
    byPartition.get(frame.partition)!.push(fields.ts);
  }
  const agreed = (times: number[], i: number) => [times[i + 1], times[i + 2]].every((t) => t !== undefined && t >= times[i] - latenessSeconds && t <= times[i] + maxSkewSeconds);
  // newestAgreed[p][i]: the newest agreed ts among the partition's frames 0..i.
  const newestAgreed = new Map<number, number[]>();
  for (const [partition, times] of byPartition) {
    let s = Number.NEGATIVE_INFINITY;
    newestAgreed.set(partition, times.map((t, i) => (s = agreed(times, i) ? Math.max(s, t) : s)));
  }
  // The stream time when the partition's j-th valid frame is judged: frames up to j − 2 can have agreed.
  const streamTime = (partition: number, j: number) => (j < 2 ? Number.NEGATIVE_INFINITY : newestAgreed.get(partition)![j - 2]);
  const seen = new Map<number, number>();
  const waiting: Array<{ frame: ReferenceFrame; index: number; fields: { uid: string; ts: number } }> = [];
  const minutes = new Map<number, { users: Set<string>; frames: number; late: number }>();
  const result: ReferenceResult = { minutes: [], late: [], onTime: [], judgedLate: [], invalid: 0, implausible: 0, streamTimes: new Map([...newestAgreed].map(([p, times]) => [p, times.at(-1)!])) };
  const minuteOf = (start: number) => {
    let m = minutes.get(start);
    if (!m) minutes.set(start, (m = { users: new Set(), frames: 0, late: 0 }));
    return m;
  };
  const judge = (frame: ReferenceFrame, index: number, fields: { uid: string; ts: number }, s: number) => {
    const start = Math.floor(fields.ts / 60) * 60;
    if (fields.ts < s - latenessSeconds) {
      result.late.push({ partition: frame.partition, index, lateBySeconds: s - fields.ts, uid: fields.uid });
      result.judgedLate.push({ ts: fields.ts, watermark: s - latenessSeconds });
      if (s - latenessSeconds < start + 60) minuteOf(start).late++;
      return;
    }
    result.onTime.push({ uid: fields.uid, ts: fields.ts });
    const m = minuteOf(start);
    m.users.add(fields.uid);
    m.frames++;
  };
  for (const { frame, index, fields } of valid) {
    if (!fields) {
      result.invalid++;
      continue;
    }
    const j = seen.get(frame.partition) ?? 0;
    seen.set(frame.partition, j + 1);
    const s = streamTime(frame.partition, j);
    if (s === Number.NEGATIVE_INFINITY) {
      waiting.push({ frame, index, fields });
      continue;
    }
    // The partition's first agreement: its earlier frames are judged first.
    for (const w of waiting.filter((w) => w.frame.partition === frame.partition)) judge(w.frame, w.index, w.fields, s);
    waiting.splice(0, waiting.length, ...waiting.filter((w) => w.frame.partition !== frame.partition));
    judge(frame, index, fields, s);
  }
  // A partition whose frames never agreed: the median of its times is its stream time.
  for (const partition of new Set(waiting.map((w) => w.frame.partition))) {
    const mine = waiting.filter((w) => w.frame.partition === partition);
    const times = mine.map((w) => w.fields.ts).sort((a, b) => a - b);
    const median = times[(times.length - 1) >> 1];
    for (const w of mine) {
      if (Math.abs(w.fields.ts - median) <= maxSkewSeconds) judge(w.frame, w.index, w.fields, median);
      else result.implausible++;
    }
  }
  result.minutes = [...minutes]
    .sort(([a], [b]) => a - b)
    .map(([start, m]) => {
      const iso = new Date(start * 1000).toISOString().replace('.000Z', 'Z');
      return { granularity: 'minute' as const, window: iso, minute: iso, start, end: start + 60, uniqueUsers: m.users.size, frames: m.frames, late: m.late };
    });
  return result;
}

const ORDER: readonly ReferenceGranularity[] = ['minute', 'hour', 'day', 'week', 'month', 'year'];

/**
 * The calendar window [start, end) in unix seconds holding `ts`, UTC, worked out with
 * Date's calendar fields: a week from the Monday on or before the day (getUTCDay), a month
 * and a year from Date.UTC of their first day.
 */
export function calendarWindow(granularity: ReferenceGranularity, ts: number): { start: number; end: number } {
  const date = new Date(Math.floor(ts) * 1000);
  const [y, mo, d, h, mi] = [date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate(), date.getUTCHours(), date.getUTCMinutes()];
  const at = (...parts: [number, number, number, number?, number?]) => Date.UTC(...parts) / 1000;
  switch (granularity) {
    case 'minute':
      return { start: at(y, mo, d, h, mi), end: at(y, mo, d, h, mi + 1) };
    case 'hour':
      return { start: at(y, mo, d, h), end: at(y, mo, d, h + 1) };
    case 'day':
      return { start: at(y, mo, d), end: at(y, mo, d + 1) };
    case 'week': {
      const sinceMonday = (date.getUTCDay() + 6) % 7;
      return { start: at(y, mo, d - sinceMonday), end: at(y, mo, d - sinceMonday + 7) };
    }
    case 'month':
      return { start: at(y, mo, 1), end: at(y, mo + 1, 1) };
    case 'year':
      return { start: at(y, 0, 1), end: at(y + 1, 0, 1) };
  }
}

/**
 * Calendar windows in an IANA time zone, found by search rather than offsets: a day is the
 * run of seconds whose local date (Intl's formatted date) is the same, its start and end found
 * by bisection; a week starts on the day whose local date is the Monday on or before, a
 * month on the 1st, a year on 1 January. Minutes and hours stay UTC.
 */
export function zonedCalendarWindow(timeZone: string): (granularity: ReferenceGranularity, ts: number) => { start: number; end: number } {
  const format = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' });
  const dateOf = (t: number) => format.format(t * 1000);
  const first = (lo: number, hi: number, isAfter: (t: number) => boolean) => {
    // The first second in (lo, hi] for which isAfter holds (it holds at hi, not at lo).
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if (isAfter(mid)) hi = mid;
      else lo = mid;
    }
    return hi;
  };
  const days = new Map<string, { start: number; end: number }>();
  const dayOf = (ts: number) => {
    const t = Math.floor(ts);
    const date = dateOf(t);
    let day = days.get(date);
    if (!day) {
      const start = first(t - 30 * 3600, t, (x) => dateOf(x) === date);
      const end = first(t, t + 30 * 3600, (x) => dateOf(x) !== date);
      days.set(date, (day = { start, end }));
    }
    return { date, ...day };
  };
  /** The day whose local date is y-m-d (m 0-based; overflow allowed). */
  const dayOn = (y: number, m: number, d: number) => {
    const wanted = new Date(Date.UTC(y, m, d)).toISOString().slice(0, 10);
    for (let h = -15; h <= 15; h++) {
      const t = Date.UTC(y, m, d, 12) / 1000 + h * 3600;
      if (dateOf(t) === wanted) return dayOf(t);
    }
    throw new Error(`no local ${wanted} in ${timeZone}`);
  };
  // The last window found per granularity: frames come mostly in order.
  const last = new Map<ReferenceGranularity, { start: number; end: number }>();
  return (granularity, ts) => {
    if (granularity === 'minute' || granularity === 'hour') return calendarWindow(granularity, ts);
    const known = last.get(granularity);
    if (known && ts >= known.start && ts < known.end) return known;
    const found = zoned(granularity, ts);
    last.set(granularity, found);
    return found;
  };

  function zoned(granularity: 'day' | 'week' | 'month' | 'year', ts: number): { start: number; end: number } {
    const day = dayOf(ts);
    const [y, m, d] = day.date.split('-').map(Number);
    switch (granularity) {
      case 'day':
        return { start: day.start, end: day.end };
      case 'week': {
        const monday = d - ((new Date(Date.UTC(y, m - 1, d)).getUTCDay() + 6) % 7);
        return { start: dayOn(y, m - 1, monday).start, end: dayOn(y, m - 1, monday + 7).start };
      }
      case 'month':
        return { start: dayOn(y, m - 1, 1).start, end: dayOn(y, m, 1).start };
      case 'year':
        return { start: dayOn(y, 0, 1).start, end: dayOn(y + 1, 0, 1).start };
    }
  }
}

/**
 * Every window of the given granularities over a reference run's judgement: distinct uids
 * of the on-time frames per calendar window, and the late frames judged while their
 * watermark had not passed the window's end. In the order the pipeline emits them: by end,
 * finest first.
 */
export function referenceWindows(result: ReferenceResult, granularities: readonly ReferenceGranularity[], calendar = calendarWindow): ReferenceWindow[] {
  const windows: ReferenceWindow[] = [];
  for (const granularity of granularities) {
    const byStart = new Map<number, { end: number; users: Set<string>; frames: number; late: number }>();
    const windowOf = (ts: number) => {
      const { start, end } = calendar(granularity, ts);
      let w = byStart.get(start);
      if (!w) byStart.set(start, (w = { end, users: new Set(), frames: 0, late: 0 }));
      return w;
    };
    for (const { uid, ts } of result.onTime) {
      const w = windowOf(ts);
      w.users.add(uid);
      w.frames++;
    }
    for (const { ts, watermark } of result.judgedLate) if (watermark < calendar(granularity, ts).end) windowOf(ts).late++;
    for (const [start, w] of byStart) {
      const iso = new Date(start * 1000).toISOString().replace('.000Z', 'Z');
      windows.push({ granularity, window: iso, start, end: w.end, uniqueUsers: w.users.size, frames: w.frames, late: w.late, ...(granularity === 'minute' ? { minute: iso } : {}) });
    }
  }
  return windows.sort((a, b) => a.end - b.end || ORDER.indexOf(a.granularity) - ORDER.indexOf(b.granularity));
}
