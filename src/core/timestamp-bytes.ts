/**
 * The price `ts` read from ASCII bytes, for the price hot path. Two rule sets
 * (docs/prices.md):
 *
 * - the default, what ordinary producers write: `yyyy-mm-dd hh:mm:ss` with 0 to 9
 *   fractional digits, `T` or a space between date and time, then nothing (UTC), `Z`, or a
 *   numeric offset `±hh:mm` (`2026-11-30 19:31:43.015327`, `2026-11-30T19:31:43Z`,
 *   `2026-11-30T20:31:43.5+01:00`);
 * - strict (`--strict-ts`): exactly `yyyy-mm-dd hh:mm:ss`, `… .fff` or `… .ffffff` in UTC.
 *
 * Only real dates (no 2021-02-30), hours 00–23, no leap second. Digits beyond the
 * millisecond are truncated (floor: the instant's millisecond).
 */

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's days_from_civil). */
export function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

function digits(b: Uint8Array, from: number, count: number): number {
  let n = 0;
  for (let i = from; i < from + count; i++) {
    const c = b[i] - 48;
    if (c < 0 || c > 9) return -1;
    n = n * 10 + c;
  }
  return n;
}

/**
 * The last valid `yyyy-mm-dd?hh` seen and its epoch ms: consecutive messages mostly share
 * their hour, whose date needs no second validation and calendar arithmetic.
 */
const lastHour = new Uint8Array(13);
let lastHourMs = Number.NaN;

/** Epoch ms of the 19 bytes `yyyy-mm-dd?hh:mm:ss` at `start` (separator checked by the caller), or NaN. */
function dateTime(b: Uint8Array, start: number): number {
  if (b[start + 4] !== 45 || b[start + 7] !== 45 || b[start + 13] !== 58 || b[start + 16] !== 58) return Number.NaN;
  const minute = digits(b, start + 14, 2);
  const second = digits(b, start + 17, 2);
  if (minute < 0 || minute > 59 || second < 0 || second > 59) return Number.NaN;
  let sameHour = lastHourMs === lastHourMs; // not NaN
  for (let k = 0; sameHour && k < 13; k++) sameHour = b[start + k] === lastHour[k];
  if (sameHour) return lastHourMs + minute * 60_000 + second * 1000;
  const year = digits(b, start, 4);
  const month = digits(b, start + 5, 2);
  const day = digits(b, start + 8, 2);
  const hour = digits(b, start + 11, 2);
  if (year < 0 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23) return Number.NaN;
  const leap = month === 2 && year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  if (day > DAYS_IN_MONTH[month - 1] + (leap ? 1 : 0)) return Number.NaN;
  lastHourMs = daysFromCivil(year, month, day) * 86_400_000 + hour * 3_600_000;
  for (let k = 0; k < 13; k++) lastHour[k] = b[start + k];
  return lastHourMs + minute * 60_000 + second * 1000;
}

/** Epoch ms, or NaN when b[start, end) is not a timestamp by the default rules above. */
export function parseTsBytes(b: Uint8Array, start: number, end: number): number {
  const length = end - start;
  // What most producers write, without the general scan: `… .fff` (produce prices) and `… .ffffff` (Python).
  if ((length === 23 || length === 26) && b[start + 19] === 46 && b[start + 10] === 32) {
    const millis = digits(b, start + 20, 3);
    if (millis >= 0 && (length === 23 || digits(b, start + 23, 3) >= 0)) return dateTime(b, start) + millis;
    // else: another layout of that length (`….44Z`): the general path decides
  }
  if (length < 19) return Number.NaN;
  const separator = b[start + 10];
  if (separator !== 32 && separator !== 84) return Number.NaN; // ' ' or 'T'
  let i = start + 19;
  let millis = 0;
  if (i < end && b[i] === 46) {
    // 1 to 9 fractional digits, in one pass; the first three are the milliseconds.
    const from = ++i;
    for (; i < end; i++) {
      const c = b[i] - 48;
      if (c < 0 || c > 9) break;
      if (i - from < 3) millis = millis * 10 + c;
    }
    const count = i - from;
    if (count === 0 || count > 9) return Number.NaN;
    if (count < 3) millis *= count === 1 ? 100 : 10;
  }
  const base = dateTime(b, start);
  if (i === end) return base + millis; // NaN stays NaN
  const zone = b[i];
  if (zone === 90) return i + 1 === end ? base + millis : Number.NaN; // 'Z'
  if ((zone !== 43 && zone !== 45) || end - i !== 6 || b[i + 3] !== 58) return Number.NaN; // ±hh:mm
  const hours = digits(b, i + 1, 2);
  const minutes = digits(b, i + 4, 2);
  if (hours < 0 || hours > 23 || minutes < 0 || minutes > 59) return Number.NaN;
  const offsetMs = (hours * 60 + minutes) * 60_000;
  return base + millis - (zone === 43 ? offsetMs : -offsetMs);
}

/** Epoch ms, or NaN when b[start, end) is not exactly `yyyy-mm-dd hh:mm:ss[.fff|.ffffff]` (UTC). */
export function parseStrictTsBytes(b: Uint8Array, start: number, end: number): number {
  const length = end - start;
  let millis: number;
  if (length === 23) millis = b[start + 19] === 46 ? digits(b, start + 20, 3) : -1;
  else if (length === 26) millis = b[start + 19] === 46 && digits(b, start + 23, 3) >= 0 ? digits(b, start + 20, 3) : -1;
  else if (length === 19) millis = 0;
  else return Number.NaN;
  if (millis < 0 || b[start + 10] !== 32) return Number.NaN;
  return dateTime(b, start) + millis;
}

/** The largest |epoch ms| a JavaScript Date holds (±100,000,000 days). */
export const MAX_EPOCH_MS = 8.64e15;
