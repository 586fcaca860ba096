/**
 * Per-minute user sketches and their rollups of UTC quarter hours, hours, 3-hour blocks and
 * days (tables user_minute_sketches, user_sketch_rollups): written as minutes are emitted,
 * read by GET /v1/unique-users for any range. docs/users.md, "Ranges on demand".
 *
 * Writing takes a transaction handle, so the pipeline can write its minutes in the same
 * PostgreSQL transaction as its offsets. A minute written again replaces the stored one;
 * the rollups that span it are then recomputed from the stored minutes (not merged
 * into: a replaced minute leaves no trace), so writing the same minutes twice, or in any
 * grouping, leaves the same rows. Writers are serialised by one transaction-scoped
 * advisory lock, so two transactions writing minutes of one hour never rebuild a rollup
 * from different sets of minutes.
 */
import { HyperLogLog } from '../core/hyperloglog.ts';
import { encodeSketch, mergeSketchBytes, sketchPrecision } from '../core/sketch-bytes.ts';
import { ROLLUP_SPANS } from '../core/user-ranges.ts';
import type { SketchSpan, SpanRange, StoredSketch } from '../core/user-ranges.ts';
import type { MinuteSketchRow } from '../core/user-sketches.ts';
import type { Database, Queryable } from './types.ts';

/** "tick" in ASCII and a sub-key (migrations use 1): serialises sketch writers. */
const LOCK_KEY = [0x7469636b, 2];

/** Writes the minutes (and the rollups they change) in one transaction of its own. */
export async function saveUserMinutes(db: Database, minutes: readonly MinuteSketchRow[]): Promise<void> {
  if (minutes.length === 0) return;
  await db.transaction((tx) => writeUserMinutes(tx, minutes));
}

/**
 * Inside the caller's transaction: upserts the minutes (the last one wins when a minute
 * is given twice), then rebuilds every rollup they fall in, finest first: each quarter
 * from its minutes, each hour from its quarters, each 3-hour block from its hours, each
 * day from its blocks.
 */
export async function writeUserMinutes(tx: Queryable, minutes: readonly MinuteSketchRow[]): Promise<void> {
  if (minutes.length === 0) return;
  const byStart = new Map<number, MinuteSketchRow>();
  for (const minute of minutes) {
    checkMinute(minute);
    byStart.set(minute.start, minute);
  }
  const rows = [...byStart.values()].sort((a, b) => a.start - b.start);
  await tx.query('SELECT pg_advisory_xact_lock($1, $2)', LOCK_KEY);
  await tx.query(
    `INSERT INTO user_minute_sketches AS m (minute_start, frames, late, exact_users, sketch)
     SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bytea[])
     ON CONFLICT (minute_start) DO UPDATE SET
       frames = EXCLUDED.frames, late = EXCLUDED.late, exact_users = EXCLUDED.exact_users,
       sketch = EXCLUDED.sketch, updated_at = now()`,
    [rows.map((r) => r.start), rows.map((r) => r.frames), rows.map((r) => r.late), rows.map((r) => r.exactUsers), rows.map((r) => r.sketch)],
  );
  let parts = rows.map((r): StoredSketch => ({ seconds: 60, start: r.start, minutes: 1, frames: r.frames, late: r.late, exactUsers: r.exactUsers, sketch: r.sketch }));
  for (const seconds of ROLLUP_SPANS) parts = await rebuild(tx, seconds, parts);
}

/**
 * The stored parts (minutes, or rollups of span $4) of the spans starting at $1[i] and $2
 * seconds long, except those starting at one of $3 (the parts in hand). Each span is an
 * index range scan: the LIMIT (at most one part per minute or per finer span) keeps the
 * planner from joining the whole table by hash instead.
 */
const OTHER_MINUTES = `SELECT m.* FROM unnest($1::bigint[]) AS g(start)
  CROSS JOIN LATERAL (
    SELECT minute_start AS start, 1 AS minutes, frames, late, exact_users, sketch FROM user_minute_sketches
    WHERE minute_start >= g.start AND minute_start < g.start + $2::bigint LIMIT $2::bigint / 60
  ) AS m
  WHERE NOT EXISTS (SELECT 1 FROM unnest($3::bigint[]) AS p(start) WHERE p.start = m.start)`;
const OTHER_ROLLUPS = `SELECT u.* FROM unnest($1::bigint[]) AS g(start)
  CROSS JOIN LATERAL (
    SELECT start, minutes, frames, late, exact_users, sketch FROM user_sketch_rollups
    WHERE seconds = $4::int AND start >= g.start AND start < g.start + $2::bigint LIMIT $2::bigint / $4::int
  ) AS u
  WHERE NOT EXISTS (SELECT 1 FROM unnest($3::bigint[]) AS p(start) WHERE p.start = u.start)`;

/**
 * The rollups of span `seconds` that `parts` (all of the next finer span) fall in, each the
 * merge of `parts` and the stored parts of its span that are not among them; written and returned.
 */
async function rebuild(tx: Queryable, seconds: SketchSpan, parts: readonly StoredSketch[]): Promise<StoredSketch[]> {
  const groups = new Map<number, StoredSketch[]>();
  for (const part of parts) {
    const start = Math.floor(part.start / seconds) * seconds;
    let group = groups.get(start);
    if (group === undefined) groups.set(start, (group = []));
    group.push(part);
  }
  const finer = parts[0].seconds;
  const { rows } = finer === 60
    ? await tx.query<RawSketch>(OTHER_MINUTES, [[...groups.keys()], seconds, parts.map((p) => p.start)])
    : await tx.query<RawSketch>(OTHER_ROLLUPS, [[...groups.keys()], seconds, parts.map((p) => p.start), finer]);
  for (const row of rows) {
    const part = fromRaw(row, finer);
    groups.get(Math.floor(part.start / seconds) * seconds)!.push(part);
  }
  const rollups = [...groups].map(([start, group]) => rollup(seconds, start, group));
  await tx.query(
    `INSERT INTO user_sketch_rollups (seconds, start, minutes, frames, late, exact_users, sketch)
     SELECT $1, * FROM unnest($2::bigint[], $3::int[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bytea[])
     ON CONFLICT (seconds, start) DO UPDATE SET
       minutes = EXCLUDED.minutes, frames = EXCLUDED.frames, late = EXCLUDED.late,
       exact_users = EXCLUDED.exact_users, sketch = EXCLUDED.sketch, updated_at = now()`,
    [seconds, rollups.map((r) => r.start), rollups.map((r) => r.minutes), rollups.map((r) => r.frames), rollups.map((r) => r.late), rollups.map((r) => r.exactUsers), rollups.map((r) => r.sketch)],
  );
  return rollups;
}

/** The merge of parts (at the lowest precision among them), their sums, and an exact count only for a single exact minute. */
function rollup(seconds: SketchSpan, start: number, parts: readonly StoredSketch[]): StoredSketch {
  const sketch = new HyperLogLog(Math.min(...parts.map((p) => sketchPrecision(p.sketch))));
  let minutes = 0;
  let frames = 0;
  let late = 0;
  for (const part of parts) {
    mergeSketchBytes(sketch, part.sketch);
    minutes += part.minutes;
    frames += part.frames;
    late += part.late;
  }
  const single = minutes === 1 ? parts[0].exactUsers : null;
  return { seconds, start, minutes, frames, late, exactUsers: single, sketch: encodeSketch(sketch) };
}

function checkMinute(minute: MinuteSketchRow): void {
  if (!Number.isSafeInteger(minute.start) || minute.start % 60 !== 0) throw new RangeError(`a minute starts at a multiple of 60 unix seconds, got ${minute.start}`);
  for (const [name, value] of [['frames', minute.frames], ['late', minute.late], ['exactUsers', minute.exactUsers ?? 0]] as const) {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`minute ${minute.start}: ${name} must be an integer >= 0, got ${value}`);
  }
  sketchPrecision(minute.sketch); // a malformed header fails here, before anything is written
}

interface RawSketch {
  seconds?: number;
  start: string;
  minutes: number;
  frames: string;
  late: string;
  exact_users: string | null;
  sketch: Buffer;
}

function fromRaw(row: RawSketch, seconds: SketchSpan): StoredSketch {
  return {
    seconds: (row.seconds ?? seconds) as SketchSpan,
    start: Number(row.start),
    minutes: Number(row.minutes),
    frames: Number(row.frames),
    late: Number(row.late),
    exactUsers: row.exact_users === null ? null : Number(row.exact_users),
    sketch: row.sketch,
  };
}

/**
 * The stored sketches whose start lies in the ranges ($1/$2: minutes; $3/$4/$5: rollups by
 * span): minutes from user_minute_sketches, the other spans from user_sketch_rollups. One
 * index range scan per range; the LIMIT (a range holds at most one row per span) keeps the
 * planner from hash-joining the whole table on `seconds` instead.
 */
export const USER_SKETCHES_SQL = `SELECT m.* FROM unnest($1::bigint[], $2::bigint[]) AS r(lo, hi)
  CROSS JOIN LATERAL (
    SELECT 60 AS seconds, minute_start AS start, 1 AS minutes, frames, late, exact_users, sketch FROM user_minute_sketches
    WHERE minute_start >= r.lo AND minute_start < r.hi LIMIT (r.hi - r.lo) / 60
  ) AS m
  UNION ALL
  SELECT u.* FROM unnest($3::int[], $4::bigint[], $5::bigint[]) AS r(seconds, lo, hi)
  CROSS JOIN LATERAL (
    SELECT seconds, start, minutes, frames, late, exact_users, sketch FROM user_sketch_rollups
    WHERE seconds = r.seconds AND start >= r.lo AND start < r.hi LIMIT (r.hi - r.lo) / r.seconds
  ) AS u`;

/** USER_SKETCHES_SQL's parameters for some ranges. */
export function userSketchParameters(ranges: readonly SpanRange[]): unknown[] {
  const minutes = ranges.filter((r) => r.seconds === 60);
  const rollups = ranges.filter((r) => r.seconds !== 60);
  return [minutes.map((r) => r.start), minutes.map((r) => r.end), rollups.map((r) => r.seconds), rollups.map((r) => r.start), rollups.map((r) => r.end)];
}

/** The stored sketches whose start lies in the ranges, in one round trip. */
export async function readUserSketches(db: Queryable, ranges: readonly SpanRange[]): Promise<StoredSketch[]> {
  if (ranges.length === 0) return [];
  const { rows } = await db.query<RawSketch>(USER_SKETCHES_SQL, userSketchParameters(ranges));
  return rows.map((row) => fromRaw(row, 60));
}
