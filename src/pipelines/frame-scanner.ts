import { Buffer } from 'node:buffer';
import { Worker } from 'node:worker_threads';
import type { AsciiText } from '../core/hyperloglog.ts';
import type { FrameProblem } from '../core/user-frame.ts';
import { valueRange } from '../log/types.ts';
import type { LogRecord, ValueRange } from '../log/types.ts';

/** Problem codes on the wire between the threads (index + 1; 0 = the frame counts). */
export const PROBLEMS: readonly FrameProblem[] = ['not-json', 'not-an-object', 'missing-uid', 'bad-uid', 'missing-ts', 'bad-ts'];

export interface ScanRequest {
  id: number;
  /** The frames' bytes, moved to the worker and back. */
  bytes: ArrayBuffer;
  /** [start, end) of each frame in `bytes`. */
  frames: Int32Array;
}

export interface ScanResult {
  id: number;
  /** The request's bytes, moved back. */
  bytes: ArrayBuffer;
  /** Per frame: 0 when it counts, else its problem's code. */
  status: Uint8Array;
  /** Per frame: root ts in seconds. */
  ts: Float64Array;
  /** The plain ASCII uids, one after another. */
  uidBytes: ArrayBuffer;
  /** Per frame: [start, end) of its plain ASCII uid in `uidBytes`, or -1 (then in `others`). */
  uid: Int32Array;
  /** [frame, uid] of the frames whose uid is not plain ASCII. */
  others: Array<[number, string]>;
  /** [frame, detail] of the frames that do not count. */
  details: Array<[number, string]>;
}

/** What a scanned frame says, in the shape of UserFrameReader (FrameCounter reads either). */
export interface FrameView {
  readonly problem: FrameProblem | null;
  readonly detail: string;
  readonly ts: number;
  readonly uidAscii: AsciiText | null;
  readonly uid: string;
}

/** A batch handed to the worker: its records, where their bytes are, and the answer to come. */
export interface ScanningBatch {
  records: LogRecord[];
  /** [start, end) of each frame in the result's `bytes`. */
  frames: Int32Array;
  result: Promise<ScanResult>;
}

/** Bytes per batch buffer: a fetch is at most 16 MiB (larger batches are read in place). */
const BUFFER_BYTES = 17 << 20;

/**
 * Reads the root fields of frames on a second thread while the main thread fetches and
 * counts. The main thread copies a batch's frames into a buffer and moves it (no copy) to
 * the worker, which answers with, per frame, the problem or the ts and where the uid lies,
 * and moves the buffer back; `release` returns it for a later batch. A batch of more than
 * 17 MiB, or with a frame over `maxFrameBytes` (which must not be parsed at all), is not
 * accepted (`submit` returns null): the caller reads it itself.
 */
export class FrameScanner {
  readonly #worker: Worker;
  readonly #pending = new Map<number, { resolve: (r: ScanResult) => void; reject: (e: unknown) => void }>();
  readonly #free: ArrayBuffer[] = [];
  readonly #maxFrameBytes: number;
  #next = 0;
  #failure: unknown = null;

  constructor(strict: boolean, maxFrameBytes = Number.POSITIVE_INFINITY) {
    this.#maxFrameBytes = maxFrameBytes;
    this.#worker = new Worker(new URL('./frame-scan-worker.ts', import.meta.url), { workerData: { strict } });
    this.#worker.on('message', (result: ScanResult) => {
      const waiter = this.#pending.get(result.id);
      this.#pending.delete(result.id);
      waiter?.resolve(result);
    });
    this.#worker.on('error', (error) => this.#fail(error));
    this.#worker.on('exit', (code) => this.#fail(new Error(`frame scanner exited with code ${code}`)));
  }

  submit(records: LogRecord[]): ScanningBatch | null {
    if (this.#failure) throw this.#failure;
    const range: ValueRange = { data: EMPTY, start: 0, end: 0 };
    const frames = new Int32Array(records.length * 2);
    const buffer = this.#free.pop() ?? new ArrayBuffer(BUFFER_BYTES);
    const target = Buffer.from(buffer);
    let at = 0;
    for (let i = 0; i < records.length; i++) {
      let length = 0;
      if (valueRange(records[i]!, range)) {
        length = range.end - range.start;
        if (at + length > BUFFER_BYTES || length > this.#maxFrameBytes) {
          this.#free.push(buffer);
          return null;
        }
        const data = range.data;
        if (data instanceof Buffer) data.copy(target, at, range.start, range.end);
        else target.set(data.subarray(range.start, range.end), at);
      }
      frames[2 * i] = at;
      frames[2 * i + 1] = at + length;
      at += length;
    }
    const id = this.#next++;
    const result = new Promise<ScanResult>((resolve, reject) => this.#pending.set(id, { resolve, reject }));
    // Batches still queued when the run fails are never awaited: not an unhandled rejection.
    result.catch(() => undefined);
    const copy = frames.slice();
    const request: ScanRequest = { id, bytes: buffer, frames: copy };
    this.#worker.postMessage(request, [buffer, copy.buffer as ArrayBuffer]);
    return { records, frames, result };
  }

  /** Gives a batch's buffer back once its frames are counted. */
  release(result: ScanResult): void {
    if (this.#free.length < 3) this.#free.push(result.bytes);
  }

  async close(): Promise<void> {
    this.#failure ??= new Error('frame scanner closed');
    await this.#worker.terminate();
  }

  #fail(error: unknown): void {
    this.#failure ??= error;
    for (const waiter of this.#pending.values()) waiter.reject(error);
    this.#pending.clear();
  }
}

const EMPTY = Buffer.alloc(0);

/** Walks a scan result frame by frame in the shape of UserFrameReader. */
export class ScannedFrames implements FrameView {
  problem: FrameProblem | null = null;
  detail = '';
  ts = Number.NaN;
  uidAscii: AsciiText | null = null;
  #uid = '';
  readonly #ascii: { bytes: Buffer; start: number; end: number };
  readonly #result: ScanResult;
  readonly #others: Map<number, string>;
  readonly #details: Map<number, string>;

  /** The batch's bytes. */
  readonly bytes: Buffer;

  constructor(result: ScanResult) {
    this.#result = result;
    this.bytes = Buffer.from(result.bytes);
    this.#ascii = { bytes: Buffer.from(result.uidBytes), start: 0, end: 0 };
    this.#others = new Map(result.others);
    this.#details = new Map(result.details);
  }

  /** Moves to frame i; true when it counts. */
  at(i: number): boolean {
    const r = this.#result;
    const status = r.status[i]!;
    if (status !== 0) {
      this.problem = PROBLEMS[status - 1]!;
      this.detail = this.#details.get(i) ?? '';
      this.ts = Number.NaN;
      this.uidAscii = null;
      this.#uid = '';
      return false;
    }
    this.problem = null;
    this.detail = '';
    this.ts = r.ts[i]!;
    const start = r.uid[2 * i]!;
    if (start >= 0) {
      this.#ascii.start = start;
      this.#ascii.end = r.uid[2 * i + 1]!;
      this.uidAscii = this.#ascii;
      this.#uid = '';
    } else {
      this.uidAscii = null;
      this.#uid = this.#others.get(i)!;
    }
    return true;
  }

  get uid(): string {
    const ascii = this.uidAscii;
    return ascii ? this.#ascii.bytes.toString('latin1', ascii.start, ascii.end) : this.#uid;
  }
}
