import { COUNTRIES } from './countries.ts';
import { daysInMonth } from './calendar-dates.ts';
import type { Random } from './random.ts';

/**
 * Synthetic user records with the dirt of a real export: countries in lower or upper case,
 * misspelt or abbreviated; dates in a mix of formats, some ambiguous, some impossible; bad
 * IPs and e-mails; blank fields; exact duplicates. Pure and seeded.
 */

export interface UserRecordOptions {
  random: Random;
  /** Share of records that repeat an earlier record verbatim. */
  duplicateShare?: number;
}

export interface RawUser {
  id: number;
  first_name: string;
  last_name: string;
  email: string | null;
  gender: string;
  ip_address: string | null;
  date: string | null;
  country: string | null;
}

const FIRST = ['Anna', 'Luca', 'Noah', 'Mia', 'Léa', 'Jonas', 'Sofia', 'Elias', 'Emma', 'Liam', 'Olga', 'Chen', 'Wei', 'Aisha', 'Mateo',
  'Zoë', 'Björn', 'Agnieszka', 'Tomás', 'Yuki', 'Priya', 'Omar', 'Fatima', 'Ivan', 'Nia', 'Hana', 'Kofi', 'Ingrid', 'José', 'Ayşe'];
const LAST = ['Müller', 'Meier', 'Schmid', 'Keller', 'Weber', 'Huber', 'Rossi', 'Dubois', "O'Brien", 'Nguyen', 'Wang', 'Li', 'Kowalski',
  'García', 'Silva', 'Tanaka', 'Sato', 'Ivanova', 'Okafor', 'Haddad', 'Johansson', 'Novák', 'Yılmaz', 'Smith', 'Jones', 'Patel'];
const DOMAINS = ['example.com', 'mail.ch', 'post.example.org', 'university.edu', 'web.de', 'yahoo.co.jp', 'company.io'];
const GENDERS = ['Male', 'Female', 'Female', 'Male', 'Non-binary', 'Genderfluid', 'Agender', 'Polygender'];
// Mock exports lean heavily on a few countries; so does this.
const POPULAR = ['China', 'Indonesia', 'Russia', 'Philippines', 'Brazil', 'Portugal', 'France', 'Sweden', 'Poland', 'United States'];
const ALIASES_SEEN = ['USA', 'U.S.', 'UK', 'United States of America', 'Russian Federation', 'Czechia', 'Holland'];
const MONTH_ABBR = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const MONTH_FULL = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

function misspell(random: Random, name: string): string {
  const i = random.int(1, name.length - 2);
  switch (random.int(0, 2)) {
    case 0: return name.slice(0, i) + name.slice(i + 1); // drop a letter
    case 1: return name.slice(0, i) + name[i + 1] + name[i] + name.slice(i + 2); // swap two
    default: return name.slice(0, i) + name[i] + name.slice(i); // double a letter
  }
}

function country(random: Random): string | null {
  const name = random.next() < 0.5 ? random.pick(POPULAR) : random.pick(COUNTRIES);
  const r = random.next();
  if (r < 0.55) return name;
  if (r < 0.75) return name.toLowerCase();
  if (r < 0.83) return name.toUpperCase();
  if (r < 0.89 && name.replace(/[^A-Za-z]/g, '').length >= 9) return misspell(random, name).toLowerCase();
  if (r < 0.92) return random.pick(ALIASES_SEEN);
  if (r < 0.97) return `  ${name.toLowerCase()}  `;
  if (r < 0.995) return name.replace(/ and /, ' & ');
  return random.next() < 0.5 ? '' : null;
}

function date(random: Random): string | null {
  const year = random.int(1950, 2023);
  const month = random.int(1, 12);
  const day = random.int(1, daysInMonth(year, month));
  const r = random.next();
  if (r < 0.35) return `${year}-${pad(month)}-${pad(day)}`;
  if (r < 0.43) return `${year}/${pad(month)}/${pad(day)}`;
  if (r < 0.53) return `${pad(day)}-${MONTH_ABBR[month - 1]}-${year}`;
  if (r < 0.61) return `${MONTH_FULL[month - 1]} ${day}, ${year}`;
  if (r < 0.67) return `${year}-${pad(month)}-${pad(day)}T${pad(random.int(0, 23))}:${pad(random.int(0, 59))}:${pad(random.int(0, 59))}Z`;
  // Numeric day/month: unambiguous only when the day is above 12 or equals the month.
  if (r < 0.76) return `${month}/${day}/${year}`;
  if (r < 0.85) return `${pad(day)}/${pad(month)}/${year}`;
  if (r < 0.87) return `${pad(day)}.${pad(month)}.${year}`;
  if (r < 0.88) return `${pad(month)}/${pad(day)}/${String(year).slice(2)}`;
  if (r < 0.895) return random.pick(['2021-02-29', '31/31/2020', 'yesterday', 'n/a', '2020-13-01', '00/00/0000']);
  if (r < 0.92 && year > 1970) return String(Date.UTC(year, month - 1, day) / 1000);
  if (r < 0.995) return `${year}-${pad(month)}-${pad(day)}`;
  return null;
}

function ip(random: Random): string | null {
  const r = random.next();
  const octet = () => random.int(1, 254);
  if (r < 0.9) return `${octet()}.${random.int(0, 255)}.${random.int(0, 255)}.${octet()}`;
  if (r < 0.96) return Array.from({ length: 8 }, () => random.int(0, 0xffff).toString(16)).join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
  if (r < 0.98) return random.pick([`${random.int(256, 999)}.1.2.3`, `${octet()}.${octet()}.${octet()}`, `${octet()}.${octet()}.${octet()}.${octet()}.${octet()}`, 'localhost', '1.2.3.04']);
  if (r < 0.995) return `  ${octet()}.${octet()}.${octet()}.${octet()}  `;
  return null;
}

function email(random: Random, first: string, last: string): string | null {
  const local = `${first}.${last}`.normalize('NFD').replace(/[^A-Za-z.]/g, '').toLowerCase();
  const domain = random.pick(DOMAINS);
  const r = random.next();
  if (r < 0.92) return `${local}${random.int(1, 999)}@${domain}`;
  if (r < 0.97) return `${local}@${domain.toUpperCase()}`;
  if (r < 0.99) return random.pick([`${local}${domain}`, `${local}@@${domain}`, `${local}..x@${domain}`, `${local} x@${domain}`, `${local}@${domain.split('.')[0]}`]);
  return null;
}

/** An endless sequence of user records with ids 1, 2, 3, ... (duplicates repeat an earlier id). */
export function* userRecords(options: UserRecordOptions): Generator<RawUser> {
  const { random } = options;
  const duplicateShare = options.duplicateShare ?? 0.03;
  const recent: RawUser[] = [];
  let id = 0;
  for (;;) {
    if (recent.length > 0 && random.next() < duplicateShare) {
      yield recent[random.int(0, recent.length - 1)];
      continue;
    }
    const first = random.pick(FIRST);
    const last = random.pick(LAST);
    const user: RawUser = {
      id: ++id,
      first_name: random.next() < 0.05 ? ` ${first} ` : first,
      last_name: last,
      email: email(random, first, last),
      gender: random.pick(GENDERS),
      ip_address: ip(random),
      date: date(random),
      country: country(random),
    };
    if (recent.length < 100) recent.push(user);
    else recent[random.int(0, 99)] = user;
    yield user;
  }
}
