import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { createGzip } from 'node:zlib';
import { seededRandom } from '../core/random.ts';
import { userRecords } from '../core/user-records.ts';
import { userTrackerFrames } from '../core/user-tracker-frames.ts';
import type { FrameOptions } from '../core/user-tracker-frames.ts';
import type { Log } from '../log/types.ts';
import { metrics } from '../observability/metrics.ts';
import { sendPaced, systemClock } from './paced-send.ts';
import type { PacingClock } from './paced-send.ts';

/**
 * Generated user records or user-tracker frames, either written at once as JSON Lines (or
 * one JSON array) to a file (gzip when it ends in .gz) or to stdout, honouring
 * back-pressure so memory stays flat however many are asked for; or frames sent to a topic
 * at a rate, in wall-clock event time, until stopped (`streamUserFrames`).
 */

export interface GenerateUsersOptions {
  kind: 'users' | 'frames';
  count: number;
  seed: string;
  /** File path, or "-" for `stdout`. */
  output: string;
  format: 'lines' | 'array';
  /** Share of lines replaced by text that is not JSON (to exercise bad-line handling). */
  badShare: number;
  duplicateShare: number;
  frames: Partial<Omit<FrameOptions, 'random'>>;
  stdout: NodeJS.WritableStream;
  signal?: AbortSignal;
}

export interface GenerateSummary {
  records: number;
  bytes: number;
  late: number;
  bad: number;
  seconds: number;
}

export async function generateUsers(options: GenerateUsersOptions): Promise<GenerateSummary> {
  const started = performance.now();
  let sink: NodeJS.WritableStream;
  let file: NodeJS.WritableStream | null = null;
  if (options.output === '-') {
    sink = options.stdout;
  } else {
    file = createWriteStream(options.output);
    if (options.output.endsWith('.gz')) {
      const gzip = createGzip({ level: 1 });
      gzip.pipe(file);
      sink = gzip;
    } else {
      sink = file;
    }
  }
  const lines = userLines(options);
  const summary: GenerateSummary = { records: 0, bytes: 0, late: 0, bad: 0, seconds: 0 };
  const separator = options.format === 'array' ? ',\n' : '\n';
  let buffered: string[] = [];
  let bufferedLength = 0;
  const flush = async () => {
    if (buffered.length === 0) return;
    const chunk = buffered.join('');
    buffered = [];
    bufferedLength = 0;
    summary.bytes += Buffer.byteLength(chunk);
    if (!sink.write(chunk)) await once(sink, 'drain');
  };
  if (options.format === 'array') buffered.push('[\n');
  for (let i = 0; i < options.count && !options.signal?.aborted; i++) {
    const { text, late, bad } = lines.next().value!;
    if (bad) summary.bad++;
    else if (late) summary.late++;
    buffered.push(i === 0 ? text : separator + text);
    bufferedLength += text.length;
    summary.records++;
    if (bufferedLength >= 1 << 20) await flush();
  }
  buffered.push(options.format === 'array' ? '\n]\n' : summary.records > 0 ? '\n' : '');
  await flush();
  if (file) {
    sink.end();
    await once(file, 'close');
  }
  summary.seconds = Math.round(performance.now() - started) / 1000;
  return summary;
}

/** One generated line: a record or frame as JSON text, or the text that replaced it (bad). */
interface UserLine {
  text: string;
  /** A frame's uid (its key in a topic); null for user records. */
  uid: string | null;
  late: boolean;
  /** Replaced by text that is not JSON (`badShare`). */
  bad: boolean;
}

/** The endless, seeded lines of `kind`, a `badShare` of them replaced by text that is not JSON. */
function* userLines(options: Pick<GenerateUsersOptions, 'kind' | 'seed' | 'badShare' | 'duplicateShare' | 'frames'>): Generator<UserLine> {
  const random = seededRandom(options.seed);
  // Dirt is drawn from its own stream so that adding bad lines does not change the records.
  const dirt = seededRandom(`${options.seed}/bad-lines`);
  const texts: Iterator<{ text: string; late: boolean; uid: string | null }> = options.kind === 'frames'
    ? userTrackerFrames({ ...options.frames, random })
    : (function* () {
      for (const user of userRecords({ random, duplicateShare: options.duplicateShare })) yield { text: JSON.stringify(user), late: false, uid: null };
    })();
  for (;;) {
    const { text, late, uid } = texts.next().value!;
    if (options.badShare > 0 && dirt.next() < options.badShare) {
      yield { text: dirt.pick(['not json at all', text.slice(0, Math.floor(text.length / 2)), `${text}}`, "{'single': 'quotes'}", `{"trailing": 1,}`]), uid, late: false, bad: true };
    } else {
      yield { text, uid, late, bad: false };
    }
  }
}

export interface StreamUserFramesOptions {
  topic: string;
  /** Partitions when the topic is created. */
  partitions: number;
  /** Frames per second, of wall-clock and of event time alike. */
  rate: number;
  seed: string;
  /** Event time of frame 0 (epoch ms); null = the wall clock when the run starts. */
  startTime: number | null;
  /** Stop after this many frames (null = no limit). */
  count: number | null;
  /** Stop after this much schedule time (null = no limit). */
  durationMs: number | null;
  badShare: number;
  /** The frames' shape; their start and pace are the run's (`startTime`, `rate`). */
  frames: Partial<Omit<FrameOptions, 'random' | 'start' | 'perSecond'>>;
  signal?: AbortSignal;
  clock?: PacingClock;
  onSent?: (sent: number) => void;
}

export interface StreamUserFramesSummary {
  frames: number;
  late: number;
  bad: number;
  seconds: number;
  /** Event time of frame 0's schedule (epoch ms); frame i's ts is at most i/rate later, floored to the second. */
  startTime: number;
}

/**
 * User-tracker frames sent live: frame i is due at the run's start + i/rate on the wall
 * clock (`sendPaced`) and carries event time start + i/rate, shuffled and made late as
 * the frame options say — the frames `generate users --frames --per-second <rate>` writes
 * to a file from the same start and seed, byte for byte. Keyed by uid, so each user stays
 * on one partition.
 */
export async function streamUserFrames(log: Log, options: StreamUserFramesOptions): Promise<StreamUserFramesSummary> {
  const clock = options.clock ?? systemClock;
  await log.createTopics([{ name: options.topic, partitions: options.partitions }]);
  const producer = log.producer();
  const started = clock.now();
  const startTime = options.startTime ?? started;
  const lines = userLines({ kind: 'frames', seed: options.seed, badShare: options.badShare, duplicateShare: 0, frames: { ...options.frames, start: startTime / 1000, perSecond: options.rate } });
  const summary: StreamUserFramesSummary = { frames: 0, late: 0, bad: 0, seconds: 0, startTime };
  const limit = Math.min(
    options.count ?? Number.POSITIVE_INFINITY,
    options.durationMs === null ? Number.POSITIVE_INFINITY : Math.ceil((options.durationMs / 1000) * options.rate),
  );
  try {
    summary.frames = await sendPaced({
      rate: options.rate,
      limit,
      started,
      clock,
      signal: options.signal,
      next: () => {
        const line = lines.next().value!;
        if (line.bad) summary.bad++;
        else if (line.late) summary.late++;
        return { key: line.uid, value: line.text };
      },
      send: async (batch) => {
        await producer.send(options.topic, batch);
        metrics.recordsOut.inc({ pipeline: 'generate-users', sink: options.topic }, batch.length);
      },
      onSent: options.onSent,
    });
  } finally {
    await producer.close();
  }
  summary.seconds = (clock.now() - started) / 1000;
  return summary;
}
