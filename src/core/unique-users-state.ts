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
 *               when held, uid, offset, the partition's time before it); in a delta, the
 *               id of the snapshot it builds on (`parent`)
 *   then        per window, in the header's order: uint32 length, then its distinct counter:
 *                 0, varint a, a × (varint length, ASCII bytes), varint b, b × (varint
 *                 length, UTF-8 bytes)   an exact set: its members, uid bytes as read
 *                 1, sketch bytes (sketch-bytes.ts)   a HyperLogLog sketch
 *                 2, varint a0, varint b0, then as 0   a delta: the members added to the
 *                 parent's set of the same window, which held a0 ASCII and b0 other members
 *   then        per held frame, in the header's order: uint32 length, then the caller's
 *               bytes for its reference (the record it came from)
 *
 * An exact set costs its members' bytes plus one byte each (uids under 128 bytes); a sketch
 * at most 0.75 · 2^precision bytes (12 KiB at 14), fewer while sparse. Unknown versions and
 * malformed bytes are refused with a RangeError, never read as different windows.
 *
 * Deltas (`StateChain`): a snapshot may build on the one written before it, storing of each
 * window whose set it held only the members added since (sketches, and windows new since,
 * whole). A chain is a full snapshot and the deltas after it, read back oldest first
 * (`decodeWindowsChain`); a set only ever grows, so its first members are the parent's.
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
const EXACT_DELTA = 2;

interface Header {
  settings: string;
  closedThrough: number | null;
  emitted: WindowsState['emitted'];
  partitions: Array<[number, PartitionTime]>;
  windows: Array<[Granularity, number, number, number, number, Array<[number, string, PartitionTime]>]>;
  held?: Array<[number, Array<[number, number | null, string, string | null, PartitionTime | null]>]>;
  /** A delta: the snapshot it builds on. */
  parent?: string;
}

/** What a delta builds on: the parent snapshot's id, and per window the parts of the exact set it held (none: stored whole). */
export interface DeltaBase {
  parent: string;
  parts(window: OpenWindowState): readonly [number, number] | null;
}

/** The window's key in a chain: granularity and start. */
export function windowStateKey(window: Pick<OpenWindowState, 'granularity' | 'start'>): string {
  return `${window.granularity}/${window.start}`;
}

/** The state's bytes; `settings` names what it is only valid under (granularities, time zone, counting). */
export function encodeWindowsState<R>(state: WindowsState<R>, settings: string, encodeRef?: (ref: R) => Uint8Array, base?: DeltaBase): Uint8Array {
  const header: Header = {
    ...(base ? { parent: base.parent } : {}),
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
    const counter = encodeCounter(window.counter, base?.parts(window) ?? null);
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
export function decodeWindowsState<R = never>(bytes: Uint8Array, counter: (granularity: Granularity) => DistinctCounter, decodeRef?: (bytes: Uint8Array) => R, previous?: WindowsState<R>): { settings: string; parent: string | null; state: WindowsState<R> } {
  if (bytes.length < 5) throw new RangeError(`unique-users state: ${bytes.length} bytes are too few`);
  if (bytes[0] !== STATE_FORMAT) throw new RangeError(`unique-users state: format version ${bytes[0]} is not one this version reads (${STATE_FORMAT})`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getUint32(1, true);
  if (5 + headerLength > bytes.length) throw new RangeError('unique-users state: the header runs past the end');
  const header = JSON.parse(fromUtf8.decode(bytes.subarray(5, 5 + headerLength))) as Header;
  if (typeof header.settings !== 'string' || !Array.isArray(header.windows) || !Array.isArray(header.partitions)) throw new RangeError('unique-users state: the header is not one this version reads');
  const parent = typeof header.parent === 'string' ? header.parent : null;
  if (parent !== null && previous === undefined) throw new RangeError(`unique-users state: a delta on snapshot ${parent}, read without it`);
  const before = new Map((previous?.windows ?? []).map((w) => [windowStateKey(w), w.counter]));
  let at = 5 + headerLength;
  const windows: OpenWindowState[] = [];
  for (const [granularity, start, end, frames, late, first] of header.windows) {
    if (!GRANULARITIES.includes(granularity)) throw new RangeError(`unique-users state: unknown granularity ${String(granularity)}`);
    if (at + 4 > bytes.length) throw new RangeError('unique-users state: a window\'s counter is missing');
    const length = view.getUint32(at, true);
    at += 4;
    if (at + length > bytes.length) throw new RangeError('unique-users state: a window\'s counter runs past the end');
    const stored = bytes.subarray(at, at + length);
    let made: DistinctCounter;
    if (stored[0] === EXACT_DELTA) {
      // The parent's set of this window, with the members added since.
      const set = before.get(`${granularity}/${start}`);
      if (parent === null || set === undefined) throw new RangeError(`unique-users state: a delta of the ${granularity} window at ${start}, which its parent does not hold`);
      made = set;
      decodeCounterInto(stored, set);
    } else {
      made = counter(granularity);
      decodeCounterInto(stored, made);
    }
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
  return { settings: header.settings, parent, state: { closedThrough: header.closedThrough, emitted: header.emitted, partitions: new Map(header.partitions), windows, held } };
}

/**
 * A chain read back: a full snapshot and the deltas after it, oldest first, each building on
 * the one before (the last one's windows, with every set grown delta by delta). Throws a
 * RangeError when a link does not build on the one before it.
 */
export function decodeWindowsChain<R = never>(chain: ReadonlyArray<{ id: string; bytes: Uint8Array }>, counter: (granularity: Granularity) => DistinctCounter, decodeRef?: (bytes: Uint8Array) => R): { settings: string; state: WindowsState<R> } {
  if (chain.length === 0) throw new RangeError('unique-users state: an empty chain');
  let previous: { id: string; settings: string; state: WindowsState<R> } | null = null;
  for (const link of chain) {
    const decoded: ReturnType<typeof decodeWindowsState<R>> = decodeWindowsState(link.bytes, counter, decodeRef, previous?.state);
    if (decoded.parent !== (previous?.id ?? null)) throw new RangeError(`unique-users state: snapshot ${link.id} builds on ${decoded.parent ?? 'nothing'}, not on ${previous?.id ?? 'nothing'}`);
    if (previous !== null && decoded.settings !== previous.settings) throw new RangeError(`unique-users state: snapshot ${link.id} was taken with other settings than its parent`);
    previous = { id: link.id, settings: decoded.settings, state: decoded.state };
  }
  return { settings: previous!.settings, state: previous!.state };
}

/**
 * The writing side of a chain of snapshots (durable state): the next snapshot is a delta on
 * the last one while the chain is short — at most `maxDeltas` deltas, together smaller than
 * the full snapshot they build on — and full otherwise. A restart reads the whole chain, so
 * it reads at most about twice a full snapshot; each delta writes the members added since.
 */
export class StateChain {
  readonly maxDeltas: number;
  #last: { id: string; base: string; deltas: number; deltaBytes: number; fullBytes: number } | null = null;
  /** Per open window, the parts of its exact set that the last snapshot holds. */
  #parts = new Map<string, readonly [number, number]>();

  constructor(maxDeltas = 60) {
    this.maxDeltas = maxDeltas;
  }

  /**
   * `state` as snapshot `id`: its bytes, the snapshot it builds on (null: full), and
   * `keepFrom`, the first snapshot of the chain the last one belongs to: a crash before this
   * one is named by a commit resumes from that chain, so it and everything after it stay.
   */
  take<R>(id: string, state: WindowsState<R>, settings: string, encodeRef?: (ref: R) => Uint8Array): { bytes: Uint8Array; parent: string | null; keepFrom: string | null } {
    const last = this.#last;
    const parts = this.#parts;
    const delta = last !== null && last.deltas < this.maxDeltas && last.deltaBytes < last.fullBytes;
    const bytes = encodeWindowsState(state, settings, encodeRef, delta ? { parent: last.id, parts: (w) => parts.get(windowStateKey(w)) ?? null } : undefined);
    this.#remember(state);
    this.#last = delta
      ? { id, base: last.base, deltas: last.deltas + 1, deltaBytes: last.deltaBytes + bytes.length, fullBytes: last.fullBytes }
      : { id, base: id, deltas: 0, deltaBytes: 0, fullBytes: bytes.length };
    return { bytes, parent: delta ? last.id : null, keepFrom: last?.base ?? null };
  }

  /** Resumed from `chain` (oldest first) decoded into `state`, before any frame: the next snapshot may build on its last. */
  resumed<R>(chain: ReadonlyArray<{ id: string; bytes: Uint8Array }>, state: WindowsState<R>): void {
    const deltaBytes = chain.slice(1).reduce((n, link) => n + link.bytes.length, 0);
    this.#last = { id: chain.at(-1)!.id, base: chain[0].id, deltas: chain.length - 1, deltaBytes, fullBytes: chain[0].bytes.length };
    this.#remember(state);
  }

  /** Forgets the chain (the windows start over): the next snapshot is full. */
  reset(): void {
    this.#last = null;
    this.#parts = new Map();
  }

  #remember<R>(state: WindowsState<R>): void {
    const parts = new Map<string, readonly [number, number]>();
    for (const window of state.windows) {
      const p = exactParts(window.counter);
      if (p !== null) parts.set(windowStateKey(window), p);
    }
    this.#parts = parts;
  }
}

/** The parts of the exact set a counter holds ([ASCII members, others]), or null when it counts in a sketch. */
export function exactParts(counter: DistinctCounter): [number, number] | null {
  const exact = counter instanceof ExactDistinct ? counter : counter instanceof BoundedDistinct ? counter.exact : null;
  return exact === null ? null : exact.parts;
}

/**
 * A distinct counter's bytes: an exact set's members, or a sketch. With `since` (the parts
 * of the set a parent snapshot stored), an exact set that still holds them stores only the
 * members added after them.
 */
export function encodeCounter(counter: DistinctCounter, since: readonly [number, number] | null = null): Uint8Array {
  if (counter instanceof HyperLogLog) return withKind(SKETCH, encodeSketch(counter));
  if (counter instanceof BoundedDistinct) {
    if (counter.sketch !== null) return withKind(SKETCH, encodeSketch(counter.sketch));
    return encodeExact(counter.exact!, since);
  }
  if (counter instanceof ExactDistinct) return encodeExact(counter, since);
  throw new RangeError('unique-users state: a distinct counter of an unknown kind');
}

/**
 * Adds the stored members (or merges the stored sketch) into `counter`; a delta's members
 * only into the set it grew from (one holding exactly the parts the delta names).
 */
export function decodeCounterInto(bytes: Uint8Array, counter: DistinctCounter): void {
  if (bytes.length === 0) throw new RangeError('unique-users state: an empty counter');
  if (bytes[0] === SKETCH) {
    const sketch = bytes.subarray(1);
    if (counter instanceof HyperLogLog) mergeSketchBytes(counter, sketch);
    else if (counter instanceof BoundedDistinct) counter.absorb(decodeSketch(sketch));
    else throw new RangeError('unique-users state: a sketch cannot seed an exact set');
    return;
  }
  if (bytes[0] !== EXACT && bytes[0] !== EXACT_DELTA) throw new RangeError(`unique-users state: unknown counter kind ${bytes[0]}`);
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
  if (bytes[0] === EXACT_DELTA) {
    const parts = exactParts(counter);
    const [a0, b0] = [read(), read()];
    if (parts === null || parts[0] !== a0 || parts[1] !== b0) throw new RangeError(`unique-users state: a delta on a set of ${a0}+${b0} members, its parent's holds ${parts === null ? 'a sketch' : `${parts[0]}+${parts[1]}`}`);
  }
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

function encodeExact(exact: ExactDistinct, since: readonly [number, number] | null): Uint8Array {
  // A delta only on a set that still holds what its parent stored (sets only grow; anything else is stored whole).
  const parts = exact.parts;
  const from = since !== null && since[0] <= parts[0] && since[1] <= parts[1] ? since : null;
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
  }, from ?? [0, 0]);
  size += varintLength(ascii.length) + varintLength(other.length);
  if (from !== null) size += varintLength(from[0]) + varintLength(from[1]);
  const out = new Uint8Array(size);
  out[0] = from === null ? EXACT : EXACT_DELTA;
  let at = 1;
  if (from !== null) at = writeVarint(out, writeVarint(out, at, from[0]), from[1]);
  at = writeVarint(out, at, ascii.length);
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

