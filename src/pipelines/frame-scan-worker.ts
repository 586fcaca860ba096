/**
 * Worker side of FrameScanner (frame-scanner.ts): reads the root uid/ts of frames whose
 * bytes the main thread copied into shared memory, and answers with compact results.
 */
import { Buffer } from 'node:buffer';
import { parentPort, workerData } from 'node:worker_threads';
import { UserFrameReader } from '../core/user-frame.ts';
import type { FrameProblem } from '../core/user-frame.ts';
import { PROBLEMS } from './frame-scanner.ts';
import type { ScanRequest, ScanResult } from './frame-scanner.ts';

const { strict } = workerData as { strict: boolean };
const reader = new UserFrameReader({ decode: (b, s, e) => (b as Buffer).toString('utf8', s, e), validateStrings: strict });
const problemCode = new Map<FrameProblem, number>(PROBLEMS.map((p, i) => [p, i + 1]));

parentPort!.on('message', (request: ScanRequest) => {
  const { frames } = request;
  const bytes = Buffer.from(request.bytes);
  const count = frames.length >> 1;
  const status = new Uint8Array(count);
  const ts = new Float64Array(count);
  const uid = new Int32Array(count * 2);
  // ASCII uids are packed together: the main thread reads them from a few KiB instead of
  // touching every frame of a 16 MiB batch again.
  let uids = Buffer.allocUnsafeSlow(count * 24);
  let packed = 0;
  const others: Array<[number, string]> = [];
  const details: Array<[number, string]> = [];
  for (let i = 0; i < count; i++) {
    if (!reader.read(bytes, frames[2 * i]!, frames[2 * i + 1]!)) {
      status[i] = problemCode.get(reader.problem!)!;
      details.push([i, reader.detail]);
      continue;
    }
    ts[i] = reader.ts;
    const ascii = reader.uidAscii;
    if (ascii) {
      const length = ascii.end - ascii.start;
      if (packed + length > uids.length) {
        const grown = Buffer.allocUnsafeSlow(Math.max(uids.length * 2, packed + length));
        uids.copy(grown, 0, 0, packed);
        uids = grown;
      }
      bytes.copy(uids, packed, ascii.start, ascii.end);
      uid[2 * i] = packed;
      uid[2 * i + 1] = packed + length;
      packed += length;
    } else {
      uid[2 * i] = -1;
      others.push([i, reader.uid]);
    }
  }
  const uidBytes = uids.buffer as ArrayBuffer;
  const result: ScanResult = { id: request.id, bytes: request.bytes, uidBytes, status, ts, uid, others, details };
  parentPort!.postMessage(result, [request.bytes, uidBytes, status.buffer, ts.buffer, uid.buffer]);
});
