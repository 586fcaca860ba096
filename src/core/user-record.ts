import { isoInstantMs, parseDate } from './calendar-dates.ts';
import type { DateOrder, DateRange } from './calendar-dates.ts';
import { ipVersion, isEmail, normalizeEmail } from './contact-checks.ts';
import { normalizeCountry } from './countries.ts';

/**
 * Conforming one user record (`id, first_name, last_name, email, gender, ip_address, date,
 * country`): trimmed text, canonical country name, ISO 8601 date, valid e-mail and IP. A
 * record that cannot be conformed gets one reason, the first problem in field order.
 */

export interface CleanUser {
  id: string | number;
  first_name: string | null;
  last_name: string | null;
  email: string;
  gender: string | null;
  ip_address: string;
  date: string;
  country: string;
}

/** Stable dead-letter reasons (they go into the `x-reason` header). */
export type RejectReason =
  | 'not-json'
  | 'not-an-object'
  | 'missing-id'
  | 'bad-email'
  | 'bad-ip'
  | 'bad-date'
  | 'ambiguous-date'
  | 'implausible-date'
  | 'missing-country';

export const REJECT_REASONS: readonly RejectReason[] = ['not-json', 'not-an-object', 'missing-id', 'bad-email', 'bad-ip', 'bad-date', 'ambiguous-date', 'implausible-date', 'missing-country'];

export type CleanResult = { ok: true; user: CleanUser } | { ok: false; reason: RejectReason; detail: string };

export interface CleanOptions {
  /** Reads numeric dates such as 03/04/2020 this way instead of rejecting them as ambiguous. */
  dateOrder?: DateOrder;
  /** A date outside this range (a date alone counts as its midnight UTC) is `implausible-date`; no check without it. */
  plausibleDates?: DateRange;
  /** IP check; pure by default (an adapter may pass node:net isIP). Returns 0, 4 or 6. */
  ipVersion?: (text: string) => number;
}

const reject = (reason: RejectReason, detail: string): CleanResult => ({ ok: false, reason, detail });

function text(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  const s = String(value).trim();
  return s === '' ? null : s;
}

/** Conforms a decoded JSON value. */
export function cleanUser(value: unknown, options: CleanOptions = {}): CleanResult {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return reject('not-an-object', 'the record is not a JSON object');
  const record = value as Record<string, unknown>;

  const rawId = record.id;
  const id = typeof rawId === 'number' && Number.isFinite(rawId) ? rawId : text(typeof rawId === 'string' ? rawId : null);
  if (id === null) return reject('missing-id', 'no id');

  const emailText = text(record.email);
  if (emailText === null) return reject('bad-email', 'no email');
  const email = normalizeEmail(emailText);
  if (!isEmail(email)) return reject('bad-email', `"${emailText}" is not an e-mail address`);

  const ip = text(record.ip_address);
  if (ip === null) return reject('bad-ip', 'no ip_address');
  const version = (options.ipVersion ?? ipVersion)(ip);
  if (version !== 4 && version !== 6) return reject('bad-ip', `"${ip}" is not an IPv4 or IPv6 address`);

  const dateText = text(record.date);
  if (dateText === null) return reject('bad-date', 'no date');
  const date = parseDate(dateText, options.dateOrder);
  if (!date.ok) return reject(date.problem, date.detail);
  const range = options.plausibleDates;
  if (range !== undefined) {
    const at = isoInstantMs(date.iso);
    if (!(at >= range.fromMs && at <= range.toMs)) {
      return reject('implausible-date', `date ${date.iso} ("${dateText}") lies outside the plausible range ${new Date(range.fromMs).toISOString()} .. ${new Date(range.toMs).toISOString()}`);
    }
  }

  const countryText = text(record.country);
  const country = countryText === null ? null : normalizeCountry(countryText);
  if (country === null) return reject('missing-country', 'no country');

  return {
    ok: true,
    user: {
      id,
      first_name: text(record.first_name),
      last_name: text(record.last_name),
      email,
      gender: text(record.gender),
      ip_address: version === 6 ? ip.toLowerCase() : ip,
      date: date.iso,
      country: country.name,
    },
  };
}

/** Conforms raw bytes or text (JSON); non-JSON becomes a `not-json` rejection. */
export function cleanUserJson(json: string, options: CleanOptions = {}): CleanResult {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (error) {
    return reject('not-json', (error as Error).message);
  }
  return cleanUser(value, options);
}
