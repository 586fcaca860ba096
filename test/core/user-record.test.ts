import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import { DEFAULT_PLAUSIBLE_DATES, parseDate, resolveDateRange } from '../../src/core/calendar-dates.ts';
import type { DateOrder } from '../../src/core/calendar-dates.ts';
import { ipVersion, isEmail, normalizeEmail } from '../../src/core/contact-checks.ts';
import { COUNTRIES, capitalizeWords, editDistance, normalizeCountry } from '../../src/core/countries.ts';
import { CountryTally, describeSummary } from '../../src/core/country-stats.ts';
import { seededRandom } from '../../src/core/random.ts';
import { REJECT_REASONS, cleanUser, cleanUserJson } from '../../src/core/user-record.ts';
import { userRecords } from '../../src/core/user-records.ts';

describe('countries', () => {
  const cases: Array<[string, string, string]> = [
    ['united states', 'United States', 'exact'],
    ['UNITED STATES', 'United States', 'exact'],
    ['  united   states ', 'United States', 'exact'],
    ['bosnia and herzegovina', 'Bosnia and Herzegovina', 'exact'],
    ['Bosnia & Herzegovina', 'Bosnia and Herzegovina', 'exact'],
    ['saint vincent and the grenadines', 'Saint Vincent and the Grenadines', 'exact'],
    ['democratic republic of the congo', 'Democratic Republic of the Congo', 'exact'],
    ['guinea-bissau', 'Guinea-Bissau', 'exact'],
    ['sao tomé and príncipe', 'Sao Tome and Principe', 'exact'],
    ['USA', 'United States', 'alias'],
    ['U.S.A.', 'United States', 'alias'],
    ['u.s.', 'United States', 'alias'],
    ['United States of America', 'United States', 'alias'],
    ['uk', 'United Kingdom', 'alias'],
    ['Russian Federation', 'Russia', 'alias'],
    ['czechia', 'Czech Republic', 'alias'],
    ["Côte d'Ivoire", 'Ivory Coast', 'alias'],
    ['philipines', 'Philippines', 'typo'],
    ['indonseia', 'Indonesia', 'typo'],
    ['Untied States', 'United States', 'typo'],
    ['swizerland', 'Switzerland', 'typo'],
    ['argentinaa', 'Argentina', 'typo'],
    ['iran', 'Iran', 'exact'],
    ['irak', 'Irak', 'unknown'],
    ['malia', 'Malia', 'unknown'],
    ['atlantis', 'Atlantis', 'unknown'],
    ['new atlantis of the sea', 'New Atlantis of the Sea', 'unknown'],
  ];
  for (const [input, name, via] of cases) {
    it(`${JSON.stringify(input)} → ${name} (${via})`, () => assert.deepEqual(normalizeCountry(input), { name, via }));
  }

  it('empty is no country', () => {
    assert.equal(normalizeCountry(''), null);
    assert.equal(normalizeCountry('  '), null);
  });

  it('maps every canonical name, in any case, to itself', () => {
    for (const name of COUNTRIES) {
      assert.deepEqual(normalizeCountry(name.toLowerCase()), { name, via: 'exact' });
      assert.deepEqual(normalizeCountry(name.toUpperCase()), { name, via: 'exact' });
    }
  });

  it('capitalises unknown names word by word, small words lower', () => {
    assert.equal(capitalizeWords("ISLE OF o'malley-smith"), "Isle of O'Malley-Smith");
  });

  it('measures edit distance with adjacent swaps as one edit', () => {
    assert.equal(editDistance('spain', 'sapin'), 1);
    assert.equal(editDistance('kitten', 'sitting'), 3);
    assert.equal(editDistance('abc', 'abc'), 0);
    assert.equal(editDistance('a', 'abcdef', 2), 3, 'cut off above the limit');
  });
});

describe('dates → ISO 8601', () => {
  const ok: Array<[string, string, DateOrder?]> = [
    ['2020-03-04', '2020-03-04'],
    ['2020-3-4', '2020-03-04'],
    ['20200304', '2020-03-04'],
    ['2020/03/04', '2020-03-04'],
    ['2020.03.04', '2020-03-04'],
    ['2020-03-04T10:20:30Z', '2020-03-04T10:20:30Z'],
    ['2020-03-04 10:20:30', '2020-03-04T10:20:30'],
    ['2020-03-04T10:20', '2020-03-04T10:20:00'],
    ['2020-03-04T23:30:00-02:00', '2020-03-05T01:30:00Z'],
    ['2020-03-04T10:20:30.5+0100', '2020-03-04T09:20:30.500Z'],
    ['4 March 2020', '2020-03-04'],
    ['4th March 2020', '2020-03-04'],
    ['04-Mar-2020', '2020-03-04'],
    ['04 mar. 2020', '2020-03-04'],
    ['March 4, 2020', '2020-03-04'],
    ['Sept 30 2020', '2020-09-30'],
    ['2020-Mar-04', '2020-03-04'],
    ['Wed, 4 Mar 2020 10:20:30 +0000', '2020-03-04T10:20:30Z'],
    ['Wednesday, March 4, 2020', '2020-03-04'],
    ['13/04/2020', '2020-04-13'],
    ['04/13/2020', '2020-04-13'],
    ['4/13/2020', '2020-04-13'],
    ['13.04.2020', '2020-04-13'],
    ['13-04-2020', '2020-04-13'],
    ['03/03/2020', '2020-03-03'],
    ['03/04/2020', '2020-04-03', 'dmy'],
    ['03/04/2020', '2020-03-04', 'mdy'],
    ['29/02/2020', '2020-02-29'],
    ['1583280000', '2020-03-04T00:00:00Z'],
    ['1583280000000', '2020-03-04T00:00:00Z'],
    ['0999-12-31', '0999-12-31'],
  ];
  for (const [input, iso, order] of ok) {
    it(`${input}${order ? ` (${order})` : ''} → ${iso}`, () => assert.deepEqual(parseDate(input, order), { ok: true, iso }));
  }

  const rejected: Array<[string, 'bad-date' | 'ambiguous-date', DateOrder?]> = [
    ['03/04/2020', 'ambiguous-date'],
    ['3/4/2020', 'ambiguous-date'],
    ['03.04.2020', 'ambiguous-date'],
    ['03/04/20', 'ambiguous-date'],
    ['4 Mar 20', 'ambiguous-date'],
    ['13/04/2020', 'bad-date', 'mdy'],
    ['2021-02-29', 'bad-date'],
    ['2020-13-01', 'bad-date'],
    ['2020-04-31', 'bad-date'],
    ['31/31/2020', 'bad-date'],
    ['00/00/0000', 'bad-date'],
    ['2020-03-04T24:00:00', 'bad-date'],
    ['2020-03-04T10:20:30+15:00', 'bad-date'],
    ['4 Smarch 2020', 'bad-date'],
    ['yesterday', 'bad-date'],
    ['', 'bad-date'],
    ['-5184000', 'bad-date'],
  ];
  for (const [input, problem, order] of rejected) {
    it(`${JSON.stringify(input)}${order ? ` (${order})` : ''} is ${problem}`, () => {
      const result = parseDate(input, order);
      assert.equal(result.ok, false);
      if (!result.ok) {
        assert.equal(result.problem, problem);
        assert.ok(result.detail.length > 0);
      }
    });
  }
});

describe('e-mail and IP checks', () => {
  const emails: Array<[string, boolean]> = [
    ['anna.muller12@example.com', true],
    ["o'brien+tag@mail.ch", true],
    ['a@b.co', true],
    ['UPPER@EXAMPLE.COM', true],
    ['x@sub-domain.example.org', true],
    ['no-at-sign.example.com', false],
    ['two@@example.com', false],
    ['dots..inside@example.com', false],
    ['.leading@example.com', false],
    ['trailing.@example.com', false],
    ['space inside@example.com', false],
    ['x@localhost', false],
    ['x@-bad.example.com', false],
    ['x@example.c', false],
    ['x@example.123', false],
    ['müller@example.com', false],
    [`${'a'.repeat(65)}@example.com`, false],
  ];
  for (const [email, valid] of emails) it(`${email} is ${valid ? '' : 'not '}an e-mail address`, () => assert.equal(isEmail(email), valid));

  it('normalises e-mail: trims, lower-cases the domain only', () => {
    assert.equal(normalizeEmail('  Anna.M@EXAMPLE.COM '), 'Anna.M@example.com');
  });

  const ips = [
    '1.2.3.4', '255.255.255.255', '0.0.0.0', '256.1.2.3', '1.2.3', '1.2.3.4.5', '01.2.3.4', '1.2.3.04', '1..3.4', ' 1.2.3.4', '1.2.3.-4', 'a.b.c.d',
    '::', '::1', '1::', 'fe80::1', '2001:db8::8a2e:370:7334', '2001:0db8:0000:0000:0000:ff00:0042:8329', '1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7::',
    '::ffff:192.0.2.1', '1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:7:1.2.3.4', '::1.2.3.4', '1::2::3', ':1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8:9', '12345::',
    'g::1', '1:2:3:4:5:6:7', '::ffff:256.0.0.1', 'fe80::1%', 'FE80::ABCD', 'localhost', '',
  ];
  for (const ip of ips) {
    it(`${JSON.stringify(ip)}: the pure check agrees with node:net isIP`, () => assert.equal(ipVersion(ip), isIP(ip)));
  }
});

describe('cleanUser: conforming records', () => {
  const base = { id: 7, first_name: ' Anna ', last_name: 'Müller', email: 'Anna.M@EXAMPLE.COM', gender: 'Female', ip_address: '10.0.0.1', date: '04-Mar-2020', country: 'united states' };

  it('trims, capitalises the country, writes the date in ISO 8601, keeps the rest', () => {
    assert.deepEqual(cleanUser(base), {
      ok: true,
      user: { id: 7, first_name: 'Anna', last_name: 'Müller', email: 'Anna.M@example.com', gender: 'Female', ip_address: '10.0.0.1', date: '2020-03-04', country: 'United States' },
    });
  });

  it('accepts a string id, blank optional names, IPv6 (lower-cased)', () => {
    const result = cleanUser({ ...base, id: ' u-7 ', first_name: '', last_name: null, ip_address: '2001:DB8::1' });
    assert.ok(result.ok);
    if (result.ok) {
      assert.equal(result.user.id, 'u-7');
      assert.equal(result.user.first_name, null);
      assert.equal(result.user.last_name, null);
      assert.equal(result.user.ip_address, '2001:db8::1');
    }
  });

  it('reads ambiguous numeric dates with a configured order', () => {
    const record = { ...base, date: '03/04/2020' };
    assert.equal(cleanUser(record).ok, false);
    const dmy = cleanUser(record, { dateOrder: 'dmy' });
    assert.ok(dmy.ok && dmy.user.date === '2020-04-03');
  });

  it('uses an injected IP check when given (the adapter may pass node:net)', () => {
    const result = cleanUser({ ...base, ip_address: 'fe80::1%eth0' }, { ipVersion: isIP });
    assert.ok(result.ok);
    assert.equal(cleanUser({ ...base, ip_address: 'fe80::1%eth0' }).ok, false, 'the pure check rejects zone ids');
  });

  // The default range of clean-users on 2026-12-01 at noon: 1900-01-01 .. 2026-12-02T12:00Z.
  const PLAUSIBLE = resolveDateRange(DEFAULT_PLAUSIBLE_DATES, Date.UTC(2026, 11, 1, 12));

  it('dead-letters dates outside the plausible range as implausible-date, apart from malformed ones; both ends included', () => {
    const verdict = (date: string) => {
      const result = cleanUser({ ...base, date }, { plausibleDates: PLAUSIBLE });
      return result.ok ? result.user.date : result.reason;
    };
    assert.equal(verdict('1900-01-01'), '1900-01-01');
    assert.equal(verdict('1899-12-31'), 'implausible-date');
    assert.equal(verdict('1899-12-31T23:59:59Z'), 'implausible-date');
    assert.equal(verdict('2026-12-02'), '2026-12-02', 'tomorrow is within now + 1 day');
    assert.equal(verdict('2026-12-02T12:00:00Z'), '2026-12-02T12:00:00Z');
    assert.equal(verdict('2026-12-02T12:00:01Z'), 'implausible-date');
    assert.equal(verdict('2026-12-02T13:00:00+02:00'), '2026-12-02T11:00:00Z', 'an offset is taken into account');
    assert.equal(verdict('2026-12-03'), 'implausible-date');
    assert.equal(verdict('2999-01-01'), 'implausible-date');
    assert.equal(verdict('4102444800'), 'implausible-date', 'unix seconds of 2100-01-01');
    assert.equal(verdict('2999-02-30'), 'bad-date', 'an impossible date stays malformed');
    const result = cleanUser({ ...base, date: '01.01.1850' }, { plausibleDates: PLAUSIBLE });
    assert.ok(!result.ok && result.detail === 'date 1850-01-01 ("01.01.1850") lies outside the plausible range 1900-01-01T00:00:00.000Z .. 2026-12-02T12:00:00.000Z', !result.ok ? result.detail : '');
    assert.equal(cleanUser({ ...base, date: '2999-01-01' }).ok, true, 'no range, no check');
  });

  const reasons: Array<[string, unknown, string]> = [
    ['not-json', '{"id":1,', 'not-json'],
    ['not-an-object (array)', '[1,2]', 'not-an-object'],
    ['not-an-object (null)', 'null', 'not-an-object'],
    ['missing-id', JSON.stringify({ ...base, id: undefined }), 'missing-id'],
    ['missing-id (blank)', JSON.stringify({ ...base, id: '  ' }), 'missing-id'],
    ['missing-id (not a number or string)', JSON.stringify({ ...base, id: { n: 1 } }), 'missing-id'],
    ['bad-email (missing)', JSON.stringify({ ...base, email: null }), 'bad-email'],
    ['bad-email (invalid)', JSON.stringify({ ...base, email: 'anna@@example.com' }), 'bad-email'],
    ['bad-ip (missing)', JSON.stringify({ ...base, ip_address: '' }), 'bad-ip'],
    ['bad-ip (invalid)', JSON.stringify({ ...base, ip_address: '300.1.1.1' }), 'bad-ip'],
    ['bad-date (missing)', JSON.stringify({ ...base, date: null }), 'bad-date'],
    ['bad-date (impossible)', JSON.stringify({ ...base, date: '2021-02-29' }), 'bad-date'],
    ['ambiguous-date', JSON.stringify({ ...base, date: '03/04/2020' }), 'ambiguous-date'],
    ['implausible-date (2999)', JSON.stringify({ ...base, date: '2999-01-01' }), 'implausible-date'],
    ['implausible-date (1850)', JSON.stringify({ ...base, date: 'March 4, 1850' }), 'implausible-date'],
    ['missing-country', JSON.stringify({ ...base, country: ' ' }), 'missing-country'],
  ];
  for (const [name, json, reason] of reasons) {
    it(`dead-letters with reason ${name}`, () => {
      const result = cleanUserJson(json as string, { plausibleDates: PLAUSIBLE });
      assert.equal(result.ok, false);
      if (!result.ok) {
        assert.equal(result.reason, reason);
        assert.ok(result.detail.length > 0);
      }
    });
  }

  it('covers every reason it declares', () => {
    assert.deepEqual(new Set(reasons.map(([, , r]) => r)), new Set(REJECT_REASONS));
  });

  it('cleans most generated records and dead-letters the dirt for one of the declared reasons', () => {
    const counts = new Map<string, number>();
    const records = userRecords({ random: seededRandom('clean-users/generated') });
    for (let i = 0; i < 5000; i++) {
      const result = cleanUserJson(JSON.stringify(records.next().value));
      const key = result.ok ? 'ok' : result.reason;
      counts.set(key, (counts.get(key) ?? 0) + 1);
      if (result.ok) {
        assert.match(result.user.date, /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d{3})?Z?)?$/);
        assert.equal(result.user.country, result.user.country.trim());
        assert.ok(isEmail(result.user.email) && isIP(result.user.ip_address) !== 0);
      }
    }
    assert.ok(counts.get('ok')! > 3500, JSON.stringify([...counts]));
    for (const key of counts.keys()) assert.ok(key === 'ok' || (REJECT_REASONS as readonly string[]).includes(key));
  });
});

describe('CountryTally', () => {
  it('lists every tied country, most and least, sorted', () => {
    const tally = new CountryTally();
    for (const [country, id] of [['China', 1], ['Brazil', 2], ['China', 3], ['Brazil', 4], ['Chad', 5], ['Fiji', 6], ['China', 1]] as const) tally.add(country, id);
    const summary = tally.summary();
    assert.deepEqual(summary, { records: 7, uniqueUsers: 6, countries: 4, most: { countries: ['China'], count: 3 }, least: { countries: ['Chad', 'Fiji'], count: 1 } });
    assert.equal(describeSummary(summary), 'most: China (3); least: Chad, Fiji (1); 7 records, 6 unique users');
  });

  it('an empty window has no most or least country', () => {
    assert.deepEqual(new CountryTally().summary().most, { countries: [], count: 0 });
  });

  it('counts users by id, whatever its type', () => {
    const tally = new CountryTally().add('Peru', 1).add('Peru', '1').add('Peru', 2);
    assert.equal(tally.summary().uniqueUsers, 2);
  });
});
