/**
 * The price `ts` (UTC) read from ASCII bytes, for the price hot path: exactly
 * `yyyy-mm-dd hh:mm:ss`, `yyyy-mm-dd hh:mm:ss.fff` or `yyyy-mm-dd hh:mm:ss.ffffff` (what
 * Python's `str(datetime)` gives: six digits, none when the microseconds are 0), only real
 * dates (no 2021-02-30). Microseconds are truncated to the millisecond.
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

/** Epoch ms, or NaN when b[start, end) is not exactly a valid timestamp. */
export function parseTsBytes(b: Uint8Array, start: number, end: number): number {
  const length = end - start;
  let millis: number;
  if (length === 23) millis = b[start + 19] === 46 ? digits(b, start + 20, 3) : -1;
  else if (length === 26) millis = b[start + 19] === 46 && digits(b, start + 23, 3) >= 0 ? digits(b, start + 20, 3) : -1;
  else if (length === 19) millis = 0;
  else return Number.NaN;
  if (b[start + 4] !== 45 || b[start + 7] !== 45 || b[start + 10] !== 32 || b[start + 13] !== 58 || b[start + 16] !== 58) return Number.NaN;
  const year = digits(b, start, 4);
  const month = digits(b, start + 5, 2);
  const day = digits(b, start + 8, 2);
  const hour = digits(b, start + 11, 2);
  const minute = digits(b, start + 14, 2);
  const second = digits(b, start + 17, 2);
  if (year < 0 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59 || millis < 0) {
    return Number.NaN;
  }
  const leap = month === 2 && year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  if (day > DAYS_IN_MONTH[month - 1] + (leap ? 1 : 0)) return Number.NaN;
  return daysFromCivil(year, month, day) * 86_400_000 + hour * 3_600_000 + minute * 60_000 + second * 1000 + millis;
}
