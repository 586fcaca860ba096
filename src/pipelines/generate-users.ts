import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { createGzip } from 'node:zlib';
import { seededRandom } from '../core/random.ts';
import { userRecords } from '../core/user-records.ts';
import { userTrackerFrames } from '../core/user-tracker-frames.ts';
import type { FrameOptions } from '../core/user-tracker-frames.ts';

/**
 * Writes generated user records or user-tracker frames as JSON Lines (or one JSON array)
 * to a file (gzip when it ends in .gz) or to stdout, honouring back-pressure so memory
 * stays flat however many are asked for.
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
  const random = seededRandom(options.seed);
  // Dirt is drawn from its own stream so that adding bad lines does not change the records.
  const dirt = seededRandom(`${options.seed}/bad-lines`);
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
  const texts: Iterator<{ text: string; late: boolean }> = options.kind === 'frames'
    ? userTrackerFrames({ ...options.frames, random })
    : (function* () {
      for (const user of userRecords({ random, duplicateShare: options.duplicateShare })) yield { text: JSON.stringify(user), late: false };
    })();
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
    const next = texts.next().value!;
    let text = next.text;
    if (options.badShare > 0 && dirt.next() < options.badShare) {
      text = dirt.pick(['not json at all', text.slice(0, Math.floor(text.length / 2)), `${text}}`, "{'single': 'quotes'}", `{"trailing": 1,}`]);
      summary.bad++;
    } else if (next.late) {
      summary.late++;
    }
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
