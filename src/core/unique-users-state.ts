/**
 * The open windows of unique-users as bytes (durable state, docs/users.md "Durable state"):
 * what `UniqueUsersWindows.snapshot()` holds, stored so that a restart seeds its windows
 * from it instead of re-reading their frames. Format 1:
 *
 *   byte 0      format version (1)
 *   bytes 1..4  n, the header's length (uint32 little-endian)
 *   n bytes     the header, JSON: the settings the state is only valid under (`settings`),
 *               the closed-through time, what an earlier run was known to have emitted, each
 *               partition's event time, and per open window its granularity, start, end,
 *               frames, late count and each partition's first frame (offset as a decimal
 *               string, and the partition's time there)
 *               and per partition the frames its event-time guard holds (time, stream time
 *               when held, uid, offset, the partition's time before it)
 *   then        per window, in the header's order: uint32 length, then its distinct counter:
 *                 0, varint a, a × (varint length, ASCII bytes), varint b, b × (varint
 *                 length, UTF-8 bytes)   an exact set: its members, uid bytes as read
 *                 1, sketch bytes (sketch-bytes.ts)   a HyperLogLog sketch
 *   then        per held frame, in the header's order: uint32 length, then the caller's
 *               bytes for its reference (the record it came from)
 *
 * An exact set costs its members' bytes plus one byte each (uids under 128 bytes); a sketch
 * at most 0.75 · 2^precision bytes (12 KiB at 14), fewer while sparse. Unknown versions and
 * malformed bytes are refused with a RangeError, never read as different windows.
 */
import { BoundedDistinct, ExactDistinct, HyperLogLog } from './hyperloglog.ts';
import type { DistinctCounter } from './hyperloglog.ts';
import { decodeSketch, encodeSketch, mergeSketchBytes, varintLength, writeVarint } from './sketch-bytes.ts';
import { GRANULARITIES } from './calendar-windows.ts';
import type { Granularity } from './calendar-windows.ts';
import type { OpenWindowState, PartitionTime, StoredHeldFrame, WindowsState } from './unique-users.ts';

export const STATE_FORMAT = 1;
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder('utf-8', { fatal: true });
const EXACT = 0;
const SKETCH = 1;

interface Header {
  settings: string;
  closedThrough: number | null;
  emitted: WindowsState['emitted'];
  partitions: Array<[number, PartitionTime]>;
  windows: Array<[Granularity, number, number, number, number, Array<[number, string, PartitionTime]>]>;
  held?: Array<[number, Array<[number, number | null, string, string | null, PartitionTime | null]>]>;
}

/** The state's bytes; `settings` names what it is only valid under (granularities, time zone, counting). */
export function encodeWindowsState<R>(state: WindowsState<R>, settings: string, encodeRef?: (ref: R) => Uint8Array): Uint8Array {
  const header: Header = {
    settings,
    closedThrough: state.closedThrough,
    emitted: state.emitted,
    partitions: [...state.partitions],
    windows: state.windows.map((w) => [w.granularity, w.start, w.end, w.frames, w.late, w.first.map(([p, f]) => [p, String(f.offset), f.time])]),
    held: [...state.held].map(([p, frames]) => [p, frames.map((h) => [h.eventTime, h.since, h.uid, h.offset === undefined ? null : String(h.offset), h.time])]),
  };
  const refs: Uint8Array[] = [];
  for (const frames of state.held.values()) {
    for (const h of frames) {
      if (!encodeRef) throw new RangeError('unique-users state: frames are held, and there is no way to store what they refer to');
      refs.push(encodeRef(h.ref));
    }
  }
  const parts: Uint8Array[] = [];
  const json = utf8.encode(JSON.stringify(header));
  const head = new Uint8Array(5);
  head[0] = STATE_FORMAT;
  new DataView(head.buffer).setUint32(1, json.length, true);
  parts.push(head, json);
  for (const window of state.windows) {
    const counter = encodeCounter(window.counter);
    const length = new Uint8Array(4);
    new DataView(length.buffer).setUint32(0, counter.length, true);
    parts.push(length, counter);
  }
  for (const ref of refs) {
    const length = new Uint8Array(4);
    new DataView(length.buffer).setUint32(0, ref.length, true);
    parts.push(length, ref);
  }
  return concat(parts);
}

/**
 * Reads a state back: its settings and the windows, each counter made by `counter` (a fresh
 * one of the running configuration) and filled with the stored members or sketch.
 */
export function decodeWindowsState<R = never>(bytes: Uint8Array, counter: (granularity: Granularity) => DistinctCounter, decodeRef?: (bytes: Uint8Array) => R): { settings: string; state: WindowsState<R> } {
  if (bytes.length < 5) throw new RangeError(`unique-users state: ${bytes.length} bytes are too few`);
  if (bytes[0] !== STATE_FORMAT) throw new RangeError(`unique-users state: format version ${bytes[0]} is not one this version reads (${STATE_FORMAT})`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getUint32(1, true);
  if (5 + headerLength > bytes.length) throw new RangeError('unique-users state: the header runs past the end');
  const header = JSON.parse(fromUtf8.decode(bytes.subarray(5, 5 + headerLength))) as Header;
  if (typeof header.settings !== 'string' || !Array.isArray(header.windows) || !Array.isArray(header.partitions)) throw new RangeError('unique-users state: the header is not one this version reads');
  let at = 5 + headerLength;
  const windows: OpenWindowState[] = [];
  for (const [granularity, start, end, frames, late, first] of header.windows) {
    if (!GRANULARITIES.includes(granularity)) throw new RangeError(`unique-users state: unknown granularity ${String(granularity)}`);
    if (at + 4 > bytes.length) throw new RangeError('unique-users state: a window\'s counter is missing');
    const length = view.getUint32(at, true);
    at += 4;
    if (at + length > bytes.length) throw new RangeError('unique-users state: a window\'s counter runs past the end');
    const made = counter(granularity);
    decodeCounterInto(bytes.subarray(at, at + length), made);
    at += length;
    windows.push({ granularity, start, end, frames, late, counter: made, first: first.map(([p, offset, time]) => [p, { offset: BigInt(offset), time }]) });
  }
  const held = new Map<number, StoredHeldFrame<R>[]>();
  for (const [partition, frames] of header.held ?? []) {
    const list: StoredHeldFrame<R>[] = [];
    for (const [eventTime, since, uid, offset, time] of frames) {
      if (!decodeRef) throw new RangeError('unique-users state: frames are held, and there is no way to read what they refer to');
      if (at + 4 > bytes.length) throw new RangeError('unique-users state: a held frame is missing');
      const length = view.getUint32(at, true);
      at += 4;
      if (at + length > bytes.length) throw new RangeError('unique-users state: a held frame runs past the end');
      list.push({ eventTime, since, uid, offset: offset === null ? undefined : BigInt(offset), time, ref: decodeRef(bytes.subarray(at, at + length)) });
      at += length;
    }
    held.set(partition, list);
  }
  if (at !== bytes.length) throw new RangeError(`unique-users state: ${bytes.length - at} bytes after the last window`);
  return { settings: header.settings, state: { closedThrough: header.closedThrough, emitted: header.emitted, partitions: new Map(header.partitions), windows, held } };
}

/** A distinct counter's bytes: an exact set's members, or a sketch. */
export function encodeCounter(counter: DistinctCounter): Uint8Array {
  if (counter instanceof HyperLogLog) return withKind(SKETCH, encodeSketch(counter));
  if (counter instanceof BoundedDistinct) {
    if (counter.sketch !== null) return withKind(SKETCH, encodeSketch(counter.sketch));
    return encodeExact(counter.exact!);
  }
  if (counter instanceof ExactDistinct) return encodeExact(counter);
  throw new RangeError('unique-users state: a distinct counter of an unknown kind');
}

/** Adds the stored members (or merges the stored sketch) into `counter`. */
export function decodeCounterInto(bytes: Uint8Array, counter: DistinctCounter): void {
  if (bytes.length === 0) throw new RangeError('unique-users state: an empty counter');
  if (bytes[0] === SKETCH) {
    const sketch = bytes.subarray(1);
    if (counter instanceof HyperLogLog) mergeSketchBytes(counter, sketch);
    else if (counter instanceof BoundedDistinct) counter.absorb(decodeSketch(sketch));
    else throw new RangeError('unique-users state: a sketch cannot seed an exact set');
    return;
  }
  if (bytes[0] !== EXACT) throw new RangeError(`unique-users state: unknown counter kind ${bytes[0]}`);
  let at = 1;
  const read = () => {
    let value = 0;
    let shift = 0;
    for (;;) {
      if (at >= bytes.length) throw new RangeError('unique-users state: a member list runs past the end');
      const b = bytes[at++];
      value += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return value;
      shift += 7;
      if (shift > 35) throw new RangeError('unique-users state: a length is too long');
    }
  };
  const ascii = read();
  for (let i = 0; i < ascii; i++) {
    const length = read();
    if (at + length > bytes.length) throw new RangeError('unique-users state: a member runs past the end');
    counter.addAscii(bytes, at, at + length);
    at += length;
  }
  const other = read();
  for (let i = 0; i < other; i++) {
    const length = read();
    if (at + length > bytes.length) throw new RangeError('unique-users state: a member runs past the end');
    counter.add(fromUtf8.decode(bytes.subarray(at, at + length)));
    at += length;
  }
  if (at !== bytes.length) throw new RangeError(`unique-users state: ${bytes.length - at} bytes after the members`);
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  let size = 0;
  for (const part of parts) size += part.length;
  const out = new Uint8Array(size);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function withKind(kind: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(payload.length + 1);
  out[0] = kind;
  out.set(payload, 1);
  return out;
}

function encodeExact(exact: ExactDistinct): Uint8Array {
  const ascii: Array<[Uint8Array, number, number]> = [];
  const other: Uint8Array[] = [];
  let size = 1;
  exact.forEachMember((bytes, start, end) => {
    ascii.push([bytes, start, end]);
    size += varintLength(end - start) + end - start;
  }, (value) => {
    const bytes = utf8.encode(value);
    other.push(bytes);
    size += varintLength(bytes.length) + bytes.length;
  });
  size += varintLength(ascii.length) + varintLength(other.length);
  const out = new Uint8Array(size);
  out[0] = EXACT;
  let at = writeVarint(out, 1, ascii.length);
  for (const [bytes, start, end] of ascii) {
    at = writeVarint(out, at, end - start);
    out.set(bytes.subarray(start, end), at);
    at += end - start;
  }
  at = writeVarint(out, at, other.length);
  for (const bytes of other) {
    at = writeVarint(out, at, bytes.length);
    out.set(bytes, at);
    at += bytes.length;
  }
  return out;
}

