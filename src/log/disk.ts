/**
 * The embedded log on disk: the CLI's default log (no --brokers), kept under
 * `<data-dir>/log` so that every command and every restart of `tickflow up` sees the same
 * topics, records and committed offsets. Format, fsync policy, retention and the lock:
 * docs/embedded.md.
 *
 *   <data-dir>/log.lock                         pid and command of the owning process
 *   <data-dir>/log/groups.json                  committed offsets of consumer groups
 *   <data-dir>/log/topics/<topic>/topic.json    {"partitions", "retentionBytes", "segmentBytes"}
 *   <data-dir>/log/topics/<topic>/<p>/<base offset, 20 digits>.seg
 *
 * A segment is a sequence of batches, one per partition per producer send:
 *   u32 length (of what follows) | u32 crc32 (of what follows it) | u8 version 1 |
 *   i64 base offset | u32 record count | records
 * and a record is
 *   u32 length | i64 offset | i64 timestamp | i32 key length (-1 null) | key |
 *   i32 value length (-1 null) | value | u16 header count | (u16 name length | name |
 *   i32 value length | value) per header
 * all big-endian. Opening scans every segment; the first batch that is incomplete, fails
 * its CRC or breaks the offset sequence is a torn tail: the file is cut there (and later
 * segments removed) with a warning.
 */
import { closeSync, fsync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, renameSync, rmSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { crc32 } from 'node:zlib';
import { TickflowError } from '../core/errors.ts';
import { lockDataDir } from '../db/pglite-lock.ts';
import { EmbeddedLog } from './embedded.ts';
import type { EmbeddedLogger, LogStorage, NewRecord, StoredPartition } from './embedded.ts';
import type { LogRecord, TopicSpec } from './types.ts';

const fsyncAsync = promisify(fsync);

const MiB = 1 << 20;
/** Default bytes kept per partition (topic config `retention.bytes`). */
export const DEFAULT_RETENTION_BYTES = 256 * MiB;
/** Default size at which a partition starts a new segment (topic config `segment.bytes`). */
export const DEFAULT_SEGMENT_BYTES = 16 * MiB;

const VERSION = 1;
/** length, crc, version, base offset, count. */
const BATCH_HEADER = 4 + 4 + 1 + 8 + 4;
const SEGMENT_NAME = /^(\d{20})\.seg$/;
const TOPIC_NAME = /^[A-Za-z0-9._-]{1,249}$/;

export interface DiskLogOptions {
  /** Warnings: a torn tail cut on open, a position moved to the log start by retention. */
  logger?: EmbeddedLogger;
}

interface TopicConfig {
  partitions: number;
  retentionBytes: number;
  segmentBytes: number;
}

interface Segment {
  base: number;
  path: string;
  fd: number;
  size: number;
  /** Base offset and file position of each batch, in order. */
  batchBases: number[];
  batchPositions: number[];
}

const segmentName = (base: number) => `${String(base).padStart(20, '0')}.seg`;

/** Runs `task` once for any number of calls made while it waits to start: group commit. */
function coalescing(task: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> = Promise.resolve();
  let next: Promise<void> | null = null;
  return () => {
    if (next) return next;
    const mine = running.then(() => {
      next = null;
      return task();
    });
    next = mine;
    running = mine.catch(() => {});
    return mine;
  };
}

function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function encodeBatch(base: number, records: readonly NewRecord[]): Buffer {
  let size = BATCH_HEADER;
  for (const r of records) {
    size += 4 + 8 + 8 + 4 + (r.key?.length ?? 0) + 4 + (r.value?.length ?? 0) + 2;
    for (const [name, value] of r.headers) size += 2 + Buffer.byteLength(name) + 4 + value.length;
  }
  const buf = Buffer.allocUnsafe(size);
  buf.writeUInt32BE(size - 4, 0);
  buf.writeUInt8(VERSION, 8);
  buf.writeBigInt64BE(BigInt(base), 9);
  buf.writeUInt32BE(records.length, 17);
  let pos = BATCH_HEADER;
  records.forEach((r, i) => {
    const start = pos;
    pos += 4;
    pos = buf.writeBigInt64BE(BigInt(base + i), pos);
    pos = buf.writeBigInt64BE(r.timestamp, pos);
    pos = writeBytes(buf, pos, r.key);
    pos = writeBytes(buf, pos, r.value);
    pos = buf.writeUInt16BE(r.headers.length, pos);
    for (const [name, value] of r.headers) {
      const length = buf.write(name, pos + 2);
      buf.writeUInt16BE(length, pos);
      pos = writeBytes(buf, pos + 2 + length, value);
    }
    buf.writeUInt32BE(pos - start - 4, start);
  });
  buf.writeUInt32BE(crc32(buf.subarray(8)), 4);
  return buf;
}

function writeBytes(buf: Buffer, pos: number, bytes: Buffer | null): number {
  if (bytes === null) return buf.writeInt32BE(-1, pos);
  pos = buf.writeInt32BE(bytes.length, pos);
  return pos + bytes.copy(buf, pos);
}

function readBytes(buf: Buffer, pos: number): [Buffer | null, number] {
  const length = buf.readInt32BE(pos);
  if (length < 0) return [null, pos + 4];
  return [buf.subarray(pos + 4, pos + 4 + length), pos + 4 + length];
}

/** The records of one batch with offsets in [from, to), appended to `out` up to `max` in all. */
function decodeBatch(buf: Buffer, topic: string, partition: number, from: number, to: number, max: number, out: LogRecord[]): void {
  const count = buf.readUInt32BE(17);
  let pos = BATCH_HEADER;
  for (let i = 0; i < count && out.length < max; i++) {
    const length = buf.readUInt32BE(pos);
    const next = pos + 4 + length;
    const offset = Number(buf.readBigInt64BE(pos + 4));
    if (offset >= to) return;
    if (offset >= from) {
      const timestamp = buf.readBigInt64BE(pos + 12);
      const [key, afterKey] = readBytes(buf, pos + 20);
      const [value, afterValue] = readBytes(buf, afterKey);
      let at = afterValue;
      const headerCount = buf.readUInt16BE(at);
      at += 2;
      const headers: Array<readonly [string, Buffer]> = [];
      for (let h = 0; h < headerCount; h++) {
        const nameLength = buf.readUInt16BE(at);
        const name = buf.toString('utf8', at + 2, at + 2 + nameLength);
        let headerValue: Buffer | null;
        [headerValue, at] = readBytes(buf, at + 2 + nameLength);
        headers.push([name, headerValue ?? Buffer.alloc(0)]);
      }
      out.push({ topic, partition, offset: BigInt(offset), timestamp, key, value, headers });
    }
    pos = next;
  }
}

/** The last index i with values[i] <= target (values ascending, values[0] <= target). */
function floorIndex(values: readonly number[], target: number): number {
  let lo = 0;
  let hi = values.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (values[mid] <= target) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

class DiskPartition implements StoredPartition {
  readonly segments: Segment[] = [];
  /** Offsets below this are fsynced and visible to readers. */
  visible = 0;
  /** The offset the next appended record gets. */
  written = 0;
  #bytes = 0;
  /** Segments written since the last fsync. */
  readonly unsynced = new Set<Segment>();

  readonly topic: string;
  readonly partition: number;
  readonly dir: string;
  readonly config: TopicConfig;

  constructor(topic: string, partition: number, dir: string, config: TopicConfig, logger: EmbeddedLogger | undefined) {
    this.topic = topic;
    this.partition = partition;
    this.dir = dir;
    this.config = config;
    const files = readdirSync(dir).filter((f) => SEGMENT_NAME.test(f)).sort();
    let torn = false;
    for (const file of files) {
      const path = join(dir, file);
      if (torn) {
        unlinkSync(path);
        continue;
      }
      const base = Number(SEGMENT_NAME.exec(file)![1]);
      if (this.segments.length > 0 && base !== this.written) {
        logger?.warn({ file: path, expected: this.written }, 'embedded log: segment does not continue the previous one; removing it and later segments');
        torn = true;
        unlinkSync(path);
        continue;
      }
      const segment = this.#scan(path, base, logger);
      torn = segment.size < segment.scannedFrom;
      this.segments.push(segment);
      this.#bytes += segment.size;
      this.written = segment.end;
    }
    if (this.segments.length === 0) this.#roll(0);
    this.visible = this.written;
  }

  start(): number {
    return this.segments[0].base;
  }

  end(): number {
    return this.visible;
  }

  read(from: number, to: number, max: number): LogRecord[] {
    const out: LogRecord[] = [];
    const end = Math.min(to, this.visible, from + max);
    if (from >= end) return out;
    const bases = this.segments.map((s) => s.base);
    for (let s = floorIndex(bases, from); s < this.segments.length; s++) {
      const segment = this.segments[s];
      if (segment.batchBases.length === 0) continue;
      const first = segment.batchBases[0] > from ? 0 : floorIndex(segment.batchBases, from);
      for (let b = first; b < segment.batchBases.length; b++) {
        if (segment.batchBases[b] >= end || out.length >= max) return out;
        const position = segment.batchPositions[b];
        const length = (b + 1 < segment.batchPositions.length ? segment.batchPositions[b + 1] : segment.size) - position;
        const buf = Buffer.allocUnsafeSlow(length);
        let read = 0;
        while (read < length) read += readSync(segment.fd, buf, read, length - read, position + read);
        decodeBatch(buf, this.topic, this.partition, from, end, max, out);
      }
    }
    return out;
  }

  /** Writes one batch at the end of the active segment (a new one past segment.bytes). */
  append(records: readonly NewRecord[]): void {
    let active = this.segments[this.segments.length - 1];
    if (active.size >= this.config.segmentBytes && active.batchBases.length > 0) active = this.#roll(this.written);
    const buf = encodeBatch(this.written, records);
    try {
      let done = 0;
      while (done < buf.length) done += writeSync(active.fd, buf, done, buf.length - done, active.size + done);
    } catch (error) {
      ftruncateSync(active.fd, active.size);
      throw new TickflowError('LOG_ERROR', `cannot write ${active.path}: ${(error as Error).message}`, { path: active.path }, { cause: error });
    }
    active.batchBases.push(this.written);
    active.batchPositions.push(active.size);
    active.size += buf.length;
    this.#bytes += buf.length;
    this.written += records.length;
    this.unsynced.add(active);
  }

  /** Deletes the oldest segments while what stays is at least retention.bytes (never the active one). */
  enforceRetention(): void {
    while (this.segments.length > 1 && !this.unsynced.has(this.segments[0]) && this.#bytes - this.segments[0].size >= this.config.retentionBytes) {
      const oldest = this.segments.shift()!;
      closeSync(oldest.fd);
      unlinkSync(oldest.path);
      this.#bytes -= oldest.size;
    }
  }

  close(): void {
    for (const segment of this.segments) closeSync(segment.fd);
  }

  #roll(base: number): Segment {
    const path = join(this.dir, segmentName(base));
    const segment: Segment = { base, path, fd: openSync(path, 'w+'), size: 0, batchBases: [], batchPositions: [] };
    syncDir(this.dir);
    this.segments.push(segment);
    return segment;
  }

  /** Indexes a segment's batches, cutting it at the first one that is torn. */
  #scan(path: string, base: number, logger: EmbeddedLogger | undefined): Segment & { end: number; scannedFrom: number } {
    const data = readFileSync(path);
    const segment = { base, path, fd: -1, size: 0, batchBases: [] as number[], batchPositions: [] as number[], end: base, scannedFrom: data.length };
    let pos = 0;
    while (pos < data.length) {
      const ok = pos + BATCH_HEADER <= data.length
        && pos + 4 + data.readUInt32BE(pos) <= data.length
        && data.readUInt32BE(pos) >= BATCH_HEADER - 4
        && crc32(data.subarray(pos + 8, pos + 4 + data.readUInt32BE(pos))) === data.readUInt32BE(pos + 4)
        && data.readUInt8(pos + 8) === VERSION
        && Number(data.readBigInt64BE(pos + 9)) === segment.end;
      if (!ok) break;
      segment.batchBases.push(segment.end);
      segment.batchPositions.push(pos);
      segment.end += data.readUInt32BE(pos + 17);
      pos += 4 + data.readUInt32BE(pos);
    }
    segment.size = pos;
    segment.fd = openSync(path, 'r+');
    if (pos < data.length) {
      logger?.warn({ file: path, keptBytes: pos, cutBytes: data.length - pos, nextOffset: segment.end }, 'embedded log: cut a torn tail (a write the last process did not finish)');
      ftruncateSync(segment.fd, pos);
      fsyncSync(segment.fd);
    }
    return segment;
  }
}

function topicConfig(spec: TopicSpec, partitions: number): TopicConfig {
  const bytes = (key: string, fallback: number) => {
    const raw = spec.configs?.[key];
    if (raw === undefined) return fallback;
    if (!/^\d+$/.test(raw) || Number(raw) < 1 || !Number.isSafeInteger(Number(raw))) {
      throw new TickflowError('BAD_CONFIG', `topic ${spec.name}: ${key} must be a positive number of bytes, got "${raw}"`, { setting: key });
    }
    return Number(raw);
  };
  return { partitions, retentionBytes: bytes('retention.bytes', DEFAULT_RETENTION_BYTES), segmentBytes: bytes('segment.bytes', DEFAULT_SEGMENT_BYTES) };
}

class DiskStorage implements LogStorage {
  readonly description: string;
  readonly #dir: string;
  readonly #logger: EmbeddedLogger | undefined;
  readonly #unlock: () => void;
  #topics = new Map<string, DiskPartition[]>();
  #committed = new Map<string, Map<string, bigint>>();
  #dirty = new Set<DiskPartition>();
  #closed = false;
  readonly #flush = coalescing(() => this.#sync());
  readonly #saveGroups = coalescing(() => this.#writeGroups());

  constructor(dir: string, logger: EmbeddedLogger | undefined) {
    this.#dir = dir;
    this.#logger = logger;
    this.description = `embedded log in ${dir}`;
    mkdirSync(join(dir, 'topics'), { recursive: true });
    this.#unlock = lockDataDir(dir, { what: 'embedded log', code: 'LOG_ERROR', instead: 'give this command another --data-dir, or --brokers' });
    try {
      for (const name of readdirSync(join(dir, 'topics'))) this.#openTopic(name);
      this.#committed = this.#readGroups();
    } catch (error) {
      for (const partitions of this.#topics.values()) for (const p of partitions) p.close();
      this.#unlock();
      if (error instanceof TickflowError) throw error;
      throw new TickflowError('LOG_ERROR', `cannot open embedded log ${dir}: ${(error as Error).message}`, { dir }, { cause: error });
    }
  }

  partitions(topic: string): readonly DiskPartition[] | undefined {
    return this.#topics.get(topic);
  }

  topicNames(): string[] {
    return [...this.#topics.keys()];
  }

  createTopic(spec: TopicSpec, partitions: number): void {
    this.#open();
    if (!TOPIC_NAME.test(spec.name) || spec.name === '.' || spec.name === '..') {
      throw new TickflowError('BAD_CONFIG', `topic name "${spec.name}": use 1 to 249 letters, digits, '.', '_' or '-'`, { topic: spec.name });
    }
    const config = topicConfig(spec, partitions);
    const dir = join(this.#dir, 'topics', spec.name);
    rmSync(dir, { recursive: true, force: true }); // an earlier create that did not finish
    for (let p = 0; p < partitions; p++) mkdirSync(join(dir, String(p)), { recursive: true });
    // topic.json last, written whole: a topic without it is an unfinished create, removed on open.
    writeFileSync(join(dir, 'topic.json.tmp'), `${JSON.stringify(config)}\n`, { flush: true });
    renameSync(join(dir, 'topic.json.tmp'), join(dir, 'topic.json'));
    syncDir(dir);
    syncDir(join(this.#dir, 'topics'));
    this.#topics.set(spec.name, Array.from({ length: partitions }, (_, p) => new DiskPartition(spec.name, p, join(dir, String(p)), config, this.#logger)));
  }

  deleteTopic(name: string): void {
    this.#open();
    for (const partition of this.#topics.get(name) ?? []) {
      partition.close();
      this.#dirty.delete(partition);
    }
    this.#topics.delete(name);
    rmSync(join(this.#dir, 'topics', name), { recursive: true, force: true });
  }

  async append(topic: string, byPartition: ReadonlyMap<number, NewRecord[]>): Promise<void> {
    this.#open();
    const partitions = this.#topics.get(topic)!;
    for (const [partition, records] of byPartition) {
      partitions[partition].append(records);
      this.#dirty.add(partitions[partition]);
    }
    await this.#flush();
  }

  loadCommitted(): Map<string, Map<string, bigint>> {
    return new Map([...this.#committed].map(([group, offsets]) => [group, new Map(offsets)]));
  }

  async saveCommitted(group: string, committed: ReadonlyMap<string, bigint>): Promise<void> {
    this.#open();
    this.#committed.set(group, new Map(committed));
    await this.#saveGroups();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    try {
      await this.#flush();
      await this.#saveGroups();
    } finally {
      this.#closed = true;
      for (const partitions of this.#topics.values()) for (const p of partitions) p.close();
      this.#unlock();
    }
  }

  #open(): void {
    if (this.#closed) throw new TickflowError('LOG_ERROR', `${this.description} is closed`);
  }

  /** One fsync per written segment for every send that waits: then their records are visible. */
  async #sync(): Promise<void> {
    const work = [...this.#dirty].map((partition) => ({ partition, upTo: partition.written, segments: [...partition.unsynced] }));
    this.#dirty.clear();
    for (const { partition } of work) partition.unsynced.clear();
    await Promise.all(work.flatMap(({ segments }) => segments.map((s) => fsyncAsync(s.fd))));
    for (const { partition, upTo } of work) {
      partition.visible = Math.max(partition.visible, upTo);
      partition.enforceRetention();
    }
  }

  #openTopic(name: string): void {
    const dir = join(this.#dir, 'topics', name);
    let config: TopicConfig;
    try {
      config = JSON.parse(readFileSync(join(dir, 'topic.json'), 'utf8')) as TopicConfig;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      rmSync(dir, { recursive: true, force: true }); // created halfway when the last process stopped
      return;
    }
    this.#topics.set(name, Array.from({ length: config.partitions }, (_, p) => new DiskPartition(name, p, join(dir, String(p)), config, this.#logger)));
  }

  #readGroups(): Map<string, Map<string, bigint>> {
    let text: string;
    try {
      text = readFileSync(join(this.#dir, 'groups.json'), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
      throw error;
    }
    const parsed = JSON.parse(text) as Record<string, Record<string, string>>;
    return new Map(Object.entries(parsed).map(([group, offsets]) => [group, new Map(Object.entries(offsets).map(([k, v]) => [k, BigInt(v)]))]));
  }

  async #writeGroups(): Promise<void> {
    const json = Object.fromEntries([...this.#committed].map(([group, offsets]) => [group, Object.fromEntries([...offsets].map(([k, v]) => [k, String(v)]))]));
    const path = join(this.#dir, 'groups.json');
    await writeFile(`${path}.tmp`, `${JSON.stringify(json)}\n`, { flush: true });
    renameSync(`${path}.tmp`, path);
  }
}

/**
 * The embedded log persisted under `dir` (the CLI uses `<data-dir>/log`): one process at
 * a time owns it (`<dir>.lock`); close() flushes and releases it.
 */
export class DiskLog extends EmbeddedLog {
  constructor(dir: string, options: DiskLogOptions = {}) {
    super(new DiskStorage(dir, options.logger), options.logger);
  }
}
