import { isUtf8 } from 'node:buffer';
import { setTimeout as sleep } from 'node:timers/promises';
import { JsonRecordSplitter } from '../core/json-records.ts';
import type { JsonRecordFormat } from '../core/json-records.ts';
import { RootFields, ValueKind } from '../core/json-root-fields.ts';
import type { Log, RecordToProduce } from '../log/types.ts';
import type { ByteSource } from './byte-source.ts';
import { openRunOutput } from './transactional-output.ts';
import type { ProducerTransactions, TransactionTally } from './transactional-output.ts';

/**
 * Replay: a file of JSON records → a topic, as fast as the broker takes them or at a set
 * rate. Each record is validated in one strict pass (the same scanner that reads root
 * fields, plus a native UTF-8 check) and sent as its original bytes, so nothing is parsed
 * into objects or re-serialised. Records that are not JSON are counted and reported with
 * their line, never sent, and do not stop the replay. Memory: one input chunk, the batch
 * being filled and at most two batches in flight. With transactions (transactional-output.ts)
 * the file, or each batch of records, is committed whole; Ctrl-C aborts a whole-file one.
 */

export interface ReplayOptions {
  topic: string;
  /** Partitions for the topic if it has to be created. */
  partitions: number;
  /** Root field whose value becomes the record key (absent: no key). */
  keyField?: string;
  /** Records per second; absent: as fast as possible. */
  rate?: number;
  format: JsonRecordFormat;
  /** Bytes of record values per produce batch. */
  batchBytes: number;
  /** How many bad records to describe (all are counted). */
  reportBad: number;
  /** --transactional: the file (or each batch of `size` records) in Kafka transactions. */
  transactions?: ProducerTransactions | null;
  signal?: AbortSignal;
  onProgress?: (progress: ReplayProgress) => void;
}

export interface ReplayProgress {
  records: number;
  bytes: number;
  bad: number;
  inputBytes: number;
}

export interface BadRecord {
  line: number;
  /** 1-based position in the input (record number in JSON Lines, element number in an array). */
  record: number;
  problem: string;
}

export interface ReplaySummary {
  source: string;
  topic: string;
  format: JsonRecordFormat;
  gzip: boolean;
  records: number;
  bytes: number;
  bad: number;
  badRecords: BadRecord[];
  /** Problems with the framing (an unterminated array, oversized records). */
  framing: string[];
  seconds: number;
  recordsPerSecond: number;
  megabytesPerSecond: number;
  aborted: boolean;
  /** What the transactions committed (null without --transactional). */
  transactions: TransactionTally | null;
}

interface Batch {
  records: RecordToProduce[];
  data: Buffer;
  used: number;
}

export async function replay(log: Log, source: ByteSource, options: ReplayOptions): Promise<ReplaySummary> {
  const started = performance.now();
  const producer = await openRunOutput(log, options.transactions);
  // Created while the first chunk is read and checked: only the first send waits for it.
  const topicReady = log.createTopics([{ name: options.topic, partitions: options.partitions }]);
  topicReady.catch(() => undefined);
  const fields = new RootFields(options.keyField ? [options.keyField] : []);
  const perBatch = options.rate ? Math.max(1, Math.ceil(options.rate / 20)) : Number.POSITIVE_INFINITY;
  const summary: ReplaySummary = {
    source: source.name, topic: options.topic, format: options.format, gzip: false, records: 0, bytes: 0, bad: 0,
    badRecords: [], framing: [], seconds: 0, recordsPerSecond: 0, megabytesPerSecond: 0, aborted: false, transactions: null,
  };
  const ready: Batch[] = [];
  const newBatch = (): Batch => ({ records: [], data: Buffer.allocUnsafe(options.batchBytes), used: 0 });
  let batch = newBatch();

  const bad = (line: number, record: number, problem: string) => {
    summary.bad++;
    if (summary.badRecords.length < options.reportBad) summary.badRecords.push({ line, record, problem });
  };

  const splitter = new JsonRecordSplitter(
    (data, start, end, line, index) => {
      if (!fields.scan(data, start, end)) return bad(line, index + 1, `not JSON: ${fields.error} at byte ${fields.errorAt - start + 1}`);
      const size = end - start;
      const view = data instanceof Buffer ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      if (!isUtf8(view.subarray(start, end))) return bad(line, index + 1, 'not JSON: invalid UTF-8');
      let key: string | null = null;
      if (options.keyField) {
        const kind = fields.kinds[0];
        if (kind === ValueKind.STRING || kind === ValueKind.ESCAPED_STRING) key = fields.string(data, 0)!;
        else if (kind === ValueKind.NUMBER || kind === ValueKind.TRUE || kind === ValueKind.FALSE) key = fields.raw(data, 0);
      }
      let value: Buffer;
      if (size > options.batchBytes) {
        value = Buffer.from(view.subarray(start, end));
      } else {
        if (batch.used + size > batch.data.length || batch.records.length >= perBatch) {
          ready.push(batch);
          batch = newBatch();
        }
        view.copy(batch.data, batch.used, start, end);
        value = batch.data.subarray(batch.used, batch.used + size);
        batch.used += size;
      }
      batch.records.push(key === null ? { value } : { key, value });
      summary.records++;
      summary.bytes += size;
      if (batch.records.length >= perBatch) {
        ready.push(batch);
        batch = newBatch();
      }
    },
    (problem, line, lost) => {
      if (lost) bad(line, splitter.records, problem);
      else summary.framing.push(`line ${line}: ${problem}`);
    },
    { format: options.format },
  );

  // Two sends in flight: while the broker acknowledges one batch, the next is filled.
  const inFlight: Promise<void>[] = [];
  let sent = 0;
  const send = async (next: Batch) => {
    if (next.records.length === 0) return;
    if (options.rate) {
      const due = started + (sent / options.rate) * 1000;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait, undefined, { signal: options.signal }).catch(() => undefined);
    }
    if (inFlight.length >= 2) await inFlight.shift();
    if (sent === 0) await topicReady;
    sent += next.records.length;
    const promise = producer.send(options.topic, next.records);
    inFlight.push(promise);
    promise.then(() => options.onProgress?.({ records: sent, bytes: summary.bytes, bad: summary.bad, inputBytes: source.consumed() }), () => undefined);
  };

  try {
    for await (const chunk of source.chunks()) {
      splitter.push(chunk);
      while (ready.length > 0) {
        await send(ready.shift()!);
        if (options.signal?.aborted) break;
      }
      if (options.signal?.aborted) {
        summary.aborted = true;
        break;
      }
    }
    if (!summary.aborted) splitter.end();
    await topicReady;
    ready.push(batch);
    while (ready.length > 0) await send(ready.shift()!);
    await Promise.all(inFlight);
    await producer.finish(summary.aborted);
  } finally {
    await producer.close();
  }
  summary.transactions = producer.tally;
  summary.format = splitter.format === 'auto' ? 'lines' : splitter.format;
  summary.gzip = source.gzip();
  summary.records = sent;
  const seconds = (performance.now() - started) / 1000;
  summary.seconds = Math.round(seconds * 1000) / 1000;
  summary.recordsPerSecond = Math.round(summary.records / seconds);
  summary.megabytesPerSecond = Math.round((summary.bytes / 1e6 / seconds) * 100) / 100;
  return summary;
}
