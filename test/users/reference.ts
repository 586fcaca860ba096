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
  minute: string;
  start: number;
  uniqueUsers: number;
  frames: number;
  late: number;
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
  const result: ReferenceResult = { minutes: [], late: [], invalid: 0, implausible: 0, streamTimes: new Map([...newestAgreed].map(([p, times]) => [p, times.at(-1)!])) };
  const minuteOf = (start: number) => {
    let m = minutes.get(start);
    if (!m) minutes.set(start, (m = { users: new Set(), frames: 0, late: 0 }));
    return m;
  };
  const judge = (frame: ReferenceFrame, index: number, fields: { uid: string; ts: number }, s: number) => {
    const start = Math.floor(fields.ts / 60) * 60;
    if (fields.ts < s - latenessSeconds) {
      result.late.push({ partition: frame.partition, index, lateBySeconds: s - fields.ts, uid: fields.uid });
      if (s - latenessSeconds < start + 60) minuteOf(start).late++;
      return;
    }
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
    .map(([start, m]) => ({ minute: new Date(start * 1000).toISOString().replace('.000Z', 'Z'), start, uniqueUsers: m.users.size, frames: m.frames, late: m.late }));
  return result;
}
