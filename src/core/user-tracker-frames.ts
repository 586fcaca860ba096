import type { Random } from './random.ts';

/**
 * Synthetic user-tracker frames, the input of `unique-users`: ~2 KB JSON objects, heavy on
 * non-ASCII text and escapes, with decoy `uid`/`ts` keys nested inside, event times
 * shuffled within a few seconds, and a share of frames that arrive much later. Pure and
 * seeded: the same options give the same bytes.
 */

export interface FrameOptions {
  random: Random;
  /** Event time of the first frame, unix seconds. */
  start: number;
  /** Frames per second of event time. */
  perSecond: number;
  /** Distinct users to draw uids from (a few heavy users, a long tail). */
  users: number;
  /** On-time frames are up to this many seconds behind the newest (strictly less). */
  disorderSeconds: number;
  /** Share of frames that are `lateSeconds` behind (0..1). */
  lateShare: number;
  lateSeconds: readonly [number, number];
  /** Target size of one frame in UTF-8 bytes. */
  bytes: number;
  /** Share of frames whose ts is a string ("1468244384"). */
  stringTsShare: number;
  /** Share of frames with a decoy root uid/ts before the real one (duplicate keys: the last wins). */
  duplicateKeyShare: number;
}

export const DEFAULT_FRAME_OPTIONS: Omit<FrameOptions, 'random'> = {
  start: 1468244340,
  perSecond: 200,
  users: 20_000,
  disorderSeconds: 5,
  lateShare: 0,
  lateSeconds: [10, 60],
  bytes: 2048,
  stringTsShare: 0.1,
  duplicateKeyShare: 0.02,
};

export interface Frame {
  /** The frame as JSON text (one line). */
  text: string;
  /** Its root uid and ts, as JSON.parse sees them. */
  uid: string;
  ts: number;
  /** Generated as a late frame (more than the disorder bound behind). */
  late: boolean;
}

const WORDS = [
  'Zürich', 'Genève', 'naïve', 'crème', 'brûlée', 'Straße', 'Müller', 'façade', 'déjà', 'vu', 'señor', 'año', 'niño', 'São', 'Paulo',
  'Łódź', 'Kraków', 'Dvořák', 'Ærø', 'fjørd', 'Ísland', 'Þingvellir', 'Москва', 'привет', 'мир', 'Київ', 'Ελλάδα', 'καλημέρα',
  'שלום', 'مرحبا', 'العالم', 'नमस्ते', 'दुनिया', 'ありがとう', '東京', '大阪', 'こんにちは', '北京', '上海', '你好', '世界', '서울', '안녕하세요',
  'ภาษาไทย', 'Tiếng', 'Việt', '😀', '🚀', '🎉', '👍🏽', '🇨🇭', '❤️', '∑', '∞', '≈', '€', '£', '¥', 'news', 'sport', 'weather',
  'article', 'video', 'click', 'scroll', 'share', 'comment', 'login', 'search', 'the', 'and', 'of', 'quote"inside', 'back\\slash',
  'tab\there', 'line\nbreak', 'sep\u2028arator', 'ctrl\u0001char',
];
const EVENTS = ['page_view', 'click', 'scroll', 'video_play', 'share', 'search', 'login', 'comment'];
const LANGS = ['de-CH', 'fr-CH', 'it-CH', 'en-GB', 'ja-JP', 'zh-CN', 'ru-RU', 'ar-EG'];
const CITIES = ['Zürich', 'Genève', 'Lausanne', 'Bern', 'Basel', 'Lugano', 'Sankt Gallen', 'Biel/Bienne'];
const UAS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1',
  'Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0',
];

const encoder = new TextEncoder();
/** UTF-8 size of each word as JSON.stringify writes it (escapes included). */
const WORD_BYTES = WORDS.map((w) => encoder.encode(JSON.stringify(w)).length - 2 + 1);

function utf8Length(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    n += c < 0x80 ? 1 : c < 0x800 ? 2 : c >= 0xd800 && c < 0xdc00 ? (i++, 4) : 3;
  }
  return n;
}

/** A uid like the real data's: 19 hex digits. */
export function userId(index: number): string {
  let h = Math.imul(index + 0x9e3779b9, 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  const low = (h ^ (h >>> 16)) >>> 0;
  return `${(index >>> 0).toString(16).padStart(8, '0').slice(-8)}${low.toString(16).padStart(8, '0')}a7c`.slice(0, 19);
}

function text(random: Random, bytes: number): string {
  const words: string[] = [];
  let size = 0;
  while (size < bytes) {
    const i = Math.floor(random.next() * WORDS.length);
    words.push(WORDS[i]);
    size += WORD_BYTES[i];
  }
  return words.join(' ');
}

/** Draws a user: a fifth of the frames come from 1% of the users. */
function pickUser(random: Random, users: number): string {
  const heavy = Math.max(1, Math.floor(users / 100));
  return userId(random.next() < 0.2 ? Math.floor(random.next() * heavy) : Math.floor(random.next() * users));
}

/** An endless, seeded sequence of frames in arrival order. */
export function* userTrackerFrames(partial: Partial<FrameOptions> & { random: Random }): Generator<Frame> {
  const o: FrameOptions = { ...DEFAULT_FRAME_OPTIONS, ...partial };
  const { random } = o;
  for (let n = 0; ; n++) {
    const now = o.start + n / o.perSecond;
    const late = o.lateShare > 0 && random.next() < o.lateShare;
    const behind = late ? o.lateSeconds[0] + random.next() * (o.lateSeconds[1] - o.lateSeconds[0]) : random.next() * o.disorderSeconds;
    // floor(now - behind) >= floor(now) - disorder when behind < disorder: never late by the bound.
    const ts = Math.floor(now - behind);
    const uid = pickUser(random, o.users);
    const tsJson = random.next() < o.stringTsShare ? `"${ts}"` : String(ts);
    const decoyUid = pickUser(random, o.users);
    const nested = {
      page: {
        url: `https://www.example.ch/${random.pick(['news', 'sport', 'kultur', 'wirtschaft'])}/${random.int(1, 99999)}`,
        title: text(random, 80),
        ref: { uid: decoyUid, ts: ts - random.int(1, 1000), source: random.pick(['search', 'social', 'direct']) },
      },
      device: { ua: random.pick(UAS), lang: random.pick(LANGS), screen: [random.pick([360, 390, 1280, 1920]), random.pick([640, 844, 800, 1080])] },
      geo: { country: 'CH', city: random.pick(CITIES), latlon: [46 + random.next(), 7 + random.next() * 3] },
      session: { id: random.int(1, 1e9), events: [{ uid: decoyUid, ts: String(ts + 1) }, { name: random.pick(EVENTS) }] },
    };
    const head: string[] = [];
    if (random.next() < o.duplicateKeyShare) head.push(`"uid":${JSON.stringify(decoyUid)}`, `"ts":${ts + 3600}`);
    const fields = [`"ts":${tsJson}`, `"uid":${JSON.stringify(uid)}`, `"event":${JSON.stringify(random.pick(EVENTS))}`];
    // Real frames do not keep a fixed key order: half of them put uid/ts last.
    const rest = [`"page":${JSON.stringify(nested.page)}`, `"device":${JSON.stringify(nested.device)}`, `"geo":${JSON.stringify(nested.geo)}`, `"session":${JSON.stringify(nested.session)}`];
    const partial = random.next() < 0.5 ? [...head, ...fields, ...rest] : [...head, ...rest, ...fields];
    const sizeSoFar = partial.reduce((s, f) => s + utf8Length(f) + 1, 0);
    partial.push(`"body":${JSON.stringify(text(random, Math.max(16, o.bytes - sizeSoFar - 24)))}`);
    yield { text: `{${partial.join(',')}}`, uid, ts, late };
  }
}
