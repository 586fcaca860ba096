/**
 * Dates as found in exports, converted to ISO 8601 when they can be read one way only.
 *
 * Read: ISO 8601 (2020-03-04, 20200304, 2020-03-04T10:20:30Z, with an offset, with a space
 * instead of T); year first with / or . (2020/03/04); day and month with a month name
 * (4 March 2020, 04-Mar-2020, March 4, 2020, Wed, 4 Mar 2020 10:20:30 +0000); unix time
 * (10 digits: seconds, 13: milliseconds); and numeric day/month/year with / . or -, which is
 * read only when one reading exists: 13/04/2020 is 13 April, 04/13/2020 is 13 April,
 * 03/03/2020 is the same both ways, but 03/04/2020 is ambiguous unless an order (dmy or
 * mdy) is configured. Two-digit years are always ambiguous. Calendar validity is checked
 * (no 2021-02-29).
 *
 * Written: a date alone as YYYY-MM-DD; a date with a time as YYYY-MM-DDTHH:MM:SS, with Z
 * when the input carried a zone (converted to UTC), without a zone when it did not (the
 * local time is kept as given rather than guessing its zone).
 */

export type DateOrder = 'dmy' | 'mdy';

export type DateResult = { ok: true; iso: string } | { ok: false; problem: 'bad-date' | 'ambiguous-date'; detail: string };

const MONTHS: Readonly<Record<string, number>> = {
  jan: 1, january: 1, feb: 2, february: 2, mar: 3, march: 3, apr: 4, april: 4, may: 5, jun: 6, june: 6, jul: 7, july: 7,
  aug: 8, august: 8, sep: 9, sept: 9, september: 9, oct: 10, october: 10, nov: 11, november: 11, dec: 12, december: 12,
};
const WEEKDAY = '(?:(?:mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)(?:day|nesday|sday|urday)?\\.?,?\\s+)?';
const TIME = '(?:[T\\s]+(\\d{1,2}):(\\d{2})(?::(\\d{2})(?:[.,](\\d{1,9}))?)?\\s*(Z|UTC|GMT|[+-]\\d{2}(?::?\\d{2})?)?)?';
const MONTH_NAME = '([a-z]+)\\.?';

const ISO = new RegExp(`^(\\d{4})-(\\d{1,2})-(\\d{1,2})${TIME}$`, 'i');
const ISO_BASIC = /^(\d{4})(\d{2})(\d{2})$/;
const YEAR_FIRST = new RegExp(`^(\\d{4})[/.](\\d{1,2})[/.](\\d{1,2})${TIME}$`, 'i');
const NUMERIC = new RegExp(`^(\\d{1,2})([/.-])(\\d{1,2})\\2(\\d{2}|\\d{4})${TIME}$`, 'i');
const DAY_MONTH_NAME = new RegExp(`^${WEEKDAY}(\\d{1,2})(?:st|nd|rd|th)?[\\s-]+${MONTH_NAME}[\\s,-]+(\\d{2}|\\d{4})${TIME}$`, 'i');
const MONTH_NAME_DAY = new RegExp(`^${WEEKDAY}${MONTH_NAME}\\s+(\\d{1,2})(?:st|nd|rd|th)?,?\\s+(\\d{2}|\\d{4})${TIME}$`, 'i');
const YEAR_MONTH_NAME = new RegExp(`^(\\d{4})[\\s-]+${MONTH_NAME}[\\s-]+(\\d{1,2})${TIME}$`, 'i');
const UNIX = /^(\d{9,10}|\d{12,13})$/;

export function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

const bad = (detail: string): DateResult => ({ ok: false, problem: 'bad-date', detail });
const ambiguous = (detail: string): DateResult => ({ ok: false, problem: 'ambiguous-date', detail });
const pad = (n: number, width = 2) => String(n).padStart(width, '0');

/** Parses one date; `order` settles numeric day/month ambiguity when given. */
export function parseDate(raw: string, order?: DateOrder): DateResult {
  const text = raw.trim();
  if (text === '') return bad('empty date');
  let m: RegExpExecArray | null;

  if ((m = ISO.exec(text)) || (m = YEAR_FIRST.exec(text))) return build(+m[1], +m[2], +m[3], m.slice(4), text);
  if ((m = ISO_BASIC.exec(text))) return build(+m[1], +m[2], +m[3], [], text);
  if ((m = UNIX.exec(text))) {
    const ms = m[1].length >= 12 ? Number(m[1]) : Number(m[1]) * 1000;
    return { ok: true, iso: new Date(ms).toISOString().replace(/\.000Z$/, 'Z') };
  }
  if ((m = YEAR_MONTH_NAME.exec(text))) {
    const month = MONTHS[m[2].toLowerCase()];
    if (month === undefined) return bad(`unknown month "${m[2]}"`);
    return build(+m[1], month, +m[3], m.slice(4), text);
  }
  if ((m = DAY_MONTH_NAME.exec(text)) || (m = MONTH_NAME_DAY.exec(text))) {
    const dayFirst = /^\d/.test(m[1]);
    const [dayText, monthText] = dayFirst ? [m[1], m[2]] : [m[2], m[1]];
    const month = MONTHS[monthText.toLowerCase()];
    if (month === undefined) return bad(`unknown month "${monthText}"`);
    if (m[3].length === 2) return ambiguous(`two-digit year in "${text}"`);
    return build(+m[3], month, +dayText, m.slice(4), text);
  }
  if ((m = NUMERIC.exec(text))) {
    const first = +m[1];
    const second = +m[3];
    if (m[4].length === 2) return ambiguous(`two-digit year in "${text}"`);
    const year = +m[4];
    const time = m.slice(5);
    const asDmy = first >= 1 && second >= 1 && second <= 12 && first <= daysInMonth(year, second);
    const asMdy = first >= 1 && first <= 12 && second >= 1 && second <= daysInMonth(year, first);
    if (order === 'dmy') return asDmy ? build(year, second, first, time, text) : bad(`"${text}" is not a day/month/year date`);
    if (order === 'mdy') return asMdy ? build(year, first, second, time, text) : bad(`"${text}" is not a month/day/year date`);
    if (asDmy && asMdy && first !== second) return ambiguous(`"${text}" reads as day/month or month/day (configure the date order)`);
    if (asDmy) return build(year, second, first, time, text);
    if (asMdy) return build(year, first, second, time, text);
    return bad(`"${text}" is not a calendar date`);
  }
  return bad(`unrecognised date "${text}"`);
}

/** Validates the parts and writes ISO 8601. `time` holds hour, minute, second, fraction, zone (all optional). */
function build(year: number, month: number, day: number, time: readonly (string | undefined)[], text: string): DateResult {
  if (year < 1 || year > 9999) return bad(`year out of range in "${text}"`);
  if (month < 1 || month > 12) return bad(`no month ${month} in "${text}"`);
  if (day < 1 || day > daysInMonth(year, month)) return bad(`no day ${day} in ${year}-${pad(month)} ("${text}")`);
  const date = `${pad(year, 4)}-${pad(month)}-${pad(day)}`;
  const [hourText, minuteText, secondText, fraction, zone] = time;
  if (hourText === undefined) return { ok: true, iso: date };
  const hour = +hourText;
  const minute = +minuteText!;
  const second = secondText === undefined ? 0 : +secondText;
  if (hour > 23 || minute > 59 || second > 59) return bad(`no time ${hourText}:${minuteText}${secondText ? `:${secondText}` : ''} in "${text}"`);
  const millis = fraction === undefined ? '' : `.${fraction.padEnd(3, '0').slice(0, 3)}`;
  const local = `${date}T${pad(hour)}:${pad(minute)}:${pad(second)}${millis}`;
  if (zone === undefined) return { ok: true, iso: local };
  const offsetMinutes = zoneOffsetMinutes(zone);
  if (Number.isNaN(offsetMinutes)) return bad(`bad zone offset "${zone}" in "${text}"`);
  const utc = Date.UTC(year, month - 1, day, hour, minute, second, fraction === undefined ? 0 : Number(millis.slice(1))) - offsetMinutes * 60_000;
  // Date.UTC maps years 0..99 to 1900..1999: set the full year explicitly.
  const at = new Date(utc);
  if (year < 100) at.setUTCFullYear(at.getUTCFullYear() - 1900);
  const iso = at.toISOString();
  return { ok: true, iso: millis === '' ? iso.replace(/\.\d{3}Z$/, 'Z') : iso };
}

function zoneOffsetMinutes(zone: string): number {
  const upper = zone.toUpperCase();
  if (upper === 'Z' || upper === 'UTC' || upper === 'GMT') return 0;
  const digits = zone.slice(1).replace(':', '');
  const hours = +digits.slice(0, 2);
  const minutes = digits.length > 2 ? +digits.slice(2, 4) : 0;
  if (hours > 14 || minutes > 59) return Number.NaN;
  return (zone[0] === '-' ? -1 : 1) * (hours * 60 + minutes);
}

/** A plausible range of instants, epoch ms UTC, both ends included. */
export interface DateRange {
  readonly fromMs: number;
  readonly toMs: number;
}

/** One end of a configured range: a fixed instant, or the time records are cleaned plus an offset. */
export type DateBound = { readonly atMs: number } | { readonly nowOffsetMs: number };

/** The default plausible range of `clean-users`: 1900-01-01 .. now + 1 day. */
export const DEFAULT_PLAUSIBLE_DATES: readonly [DateBound, DateBound] = [{ atMs: Date.UTC(1900, 0, 1) }, { nowOffsetMs: 86_400_000 }];

/** The range the bounds stand for at `nowMs`. */
export function resolveDateRange(bounds: readonly [DateBound, DateBound], nowMs: number): DateRange {
  const at = (b: DateBound) => ('atMs' in b ? b.atMs : nowMs + b.nowOffsetMs);
  return { fromMs: at(bounds[0]), toMs: at(bounds[1]) };
}

/** The instant an ISO 8601 text written by `parseDate` stands for: a date alone is its midnight, a time without a zone is read as UTC. */
export function isoInstantMs(iso: string): number {
  const full = iso.length === 10 ? `${iso}T00:00:00Z` : /(Z|[+-]\d{2}:?\d{2})$/.test(iso) ? iso : `${iso}Z`;
  return Date.parse(full);
}

