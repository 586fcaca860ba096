/**
 * An independent, deliberately naive unique-users: JSON.parse every frame, take the root
 * uid/ts, walk each partition in offset order keeping its newest ts, call a frame late when
 * it is more than the lateness behind that, and count distinct uids per minute in Sets.
 * No scanner, no watermark classes, no windows: what the pipeline must agree with.
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

export function referenceUniqueUsers(frames: readonly ReferenceFrame[], latenessSeconds = 5): ReferenceResult {
  const newest = new Map<number, number>();
  const minutes = new Map<number, { users: Set<string>; frames: number; late: number }>();
  const result: ReferenceResult = { minutes: [], late: [], invalid: 0 };
  const minuteOf = (start: number) => {
    let m = minutes.get(start);
    if (!m) minutes.set(start, (m = { users: new Set(), frames: 0, late: 0 }));
    return m;
  };
  frames.forEach((frame, index) => {
    const fields = rootUidTs(frame.text);
    if (!fields) {
      result.invalid++;
      return;
    }
    const max = newest.get(frame.partition) ?? Number.NEGATIVE_INFINITY;
    const start = Math.floor(fields.ts / 60) * 60;
    if (fields.ts < max - latenessSeconds) {
      result.late.push({ partition: frame.partition, index, lateBySeconds: max - fields.ts, uid: fields.uid });
      if (max - latenessSeconds < start + 60) minuteOf(start).late++;
      return;
    }
    newest.set(frame.partition, Math.max(max, fields.ts));
    const m = minuteOf(start);
    m.users.add(fields.uid);
    m.frames++;
  });
  result.minutes = [...minutes]
    .sort(([a], [b]) => a - b)
    .map(([start, m]) => ({ minute: new Date(start * 1000).toISOString().replace('.000Z', 'Z'), start, uniqueUsers: m.users.size, frames: m.frames, late: m.late }));
  return result;
}
