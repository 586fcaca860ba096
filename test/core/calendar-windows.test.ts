import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GRANULARITIES, ZonedCalendar, parseGranularities, windowEnd, windowIso, windowStart } from '../../src/core/calendar-windows.ts';
import { seededRandom } from '../../src/core/random.ts';
import { calendarWindow, zonedCalendarWindow } from '../users/reference.ts';

const at = (iso: string) => Date.parse(iso);

describe('calendar windows (UTC)', () => {
  it('aligns each granularity to the calendar: ISO weeks from Monday, months and years by the calendar', () => {
    const t = at('2017-01-01T13:39:27.500Z'); // a Sunday
    const expected: Record<string, [string, string]> = {
      minute: ['2017-01-01T13:39:00Z', '2017-01-01T13:40:00Z'],
      hour: ['2017-01-01T13:00:00Z', '2017-01-01T14:00:00Z'],
      day: ['2017-01-01T00:00:00Z', '2017-01-02T00:00:00Z'],
      week: ['2016-12-26T00:00:00Z', '2017-01-02T00:00:00Z'],
      month: ['2017-01-01T00:00:00Z', '2017-02-01T00:00:00Z'],
      year: ['2017-01-01T00:00:00Z', '2018-01-01T00:00:00Z'],
    };
    for (const g of GRANULARITIES) {
      const start = windowStart(g, t);
      assert.deepEqual([windowIso(start), windowIso(windowEnd(g, start))], expected[g], g);
    }
    assert.equal(windowIso(windowStart('week', at('2017-01-02T00:00:00Z'))), '2017-01-02T00:00:00Z', 'a Monday starts its own week');
    assert.equal(windowIso(windowEnd('month', windowStart('month', at('2016-02-29T23:59:59Z')))), '2016-03-01T00:00:00Z', 'February of a leap year');
    assert.equal(windowIso(windowStart('week', at('1970-01-01T00:00:00Z'))), '1969-12-29T00:00:00Z', 'before the epoch too');
    assert.equal(new Date(windowStart('year', at('0050-06-01T00:00:00Z'))).toISOString(), '0050-01-01T00:00:00.000Z', 'years below 100 are not 19xx');
  });

  it('agrees with a Date-field recomputation on 20,000 random times from 1900 to 2200', () => {
    const random = seededRandom('calendar-windows');
    for (let i = 0; i < 20_000; i++) {
      const seconds = Math.floor(-2.2e9 + random.next() * 9.5e9);
      for (const g of GRANULARITIES) {
        const start = windowStart(g, seconds * 1000);
        const expected = calendarWindow(g, seconds);
        assert.deepEqual({ start: start / 1000, end: windowEnd(g, start) / 1000 }, expected, `${g} of ${new Date(seconds * 1000).toISOString()}`);
      }
    }
  });

  it('reads --granularity lists: any subset, finest first, each once; names an unknown one', () => {
    assert.deepEqual(parseGranularities('year,minute,day,minute'), ['minute', 'day', 'year']);
    assert.deepEqual(parseGranularities('minute,hour,day,week,month,year'), [...GRANULARITIES]);
    assert.throws(() => parseGranularities('minute,fortnight'), /unknown granularity "fortnight": expects any of minute,hour,day,week,month,year/);
    assert.throws(() => parseGranularities(''), /expects one or more of/);
  });
});

describe('calendar windows in a time zone', () => {
  it('days from local midnight: 25 hours when clocks go back, 23 when they go forward; weeks, months, years likewise', () => {
    const zurich = new ZonedCalendar('Europe/Zurich');
    const window = (g: (typeof GRANULARITIES)[number], iso: string) => {
      const start = zurich.start(g, at(iso));
      const end = zurich.end(g, start);
      return [zurich.iso(start), zurich.iso(end), (end - start) / 3_600_000];
    };
    assert.deepEqual(window('day', '2016-10-30T12:00:00Z'), ['2016-10-30T00:00:00+02:00', '2016-10-31T00:00:00+01:00', 25]);
    assert.deepEqual(window('day', '2016-03-27T12:00:00Z'), ['2016-03-27T00:00:00+01:00', '2016-03-28T00:00:00+02:00', 23]);
    assert.deepEqual(window('day', '2016-12-31T23:30:00Z'), ['2017-01-01T00:00:00+01:00', '2017-01-02T00:00:00+01:00', 24], 'already 1 January in Zurich');
    assert.deepEqual(window('week', '2016-10-30T12:00:00Z'), ['2016-10-24T00:00:00+02:00', '2016-10-31T00:00:00+01:00', 169]);
    assert.deepEqual(window('month', '2016-10-30T12:00:00Z'), ['2016-10-01T00:00:00+02:00', '2016-11-01T00:00:00+01:00', 745]);
    assert.deepEqual(window('year', '2016-12-31T23:30:00Z'), ['2017-01-01T00:00:00+01:00', '2018-01-01T00:00:00+01:00', 8760]);
    assert.deepEqual(window('hour', '2016-10-30T12:30:00Z').slice(2), [1], 'hours and minutes stay UTC');
    const kolkata = new ZonedCalendar('Asia/Kolkata');
    assert.equal(kolkata.iso(kolkata.start('day', at('2016-07-11T20:00:00Z'))), '2016-07-12T00:00:00+05:30');
    const santiago = new ZonedCalendar('America/Santiago');
    const skipped = santiago.start('day', at('2016-08-14T12:00:00Z'));
    assert.equal(santiago.iso(skipped), '2016-08-14T01:00:00-03:00', 'midnight skipped: the day starts at the first local time');
    assert.throws(() => new ZonedCalendar('Mars/Olympus_Mons'), /unknown time zone "Mars\/Olympus_Mons" \(an IANA name such as Europe\/Zurich\)/);
  });

  it('agrees with a search over local dates on 100 random times in each of six zones, and its ISO start parses back to the start', () => {
    const random = seededRandom('calendar-windows/zoned');
    for (const zone of ['Europe/Zurich', 'America/New_York', 'Asia/Kolkata', 'Asia/Kathmandu', 'Australia/Lord_Howe', 'Pacific/Kiritimati']) {
      const calendar = new ZonedCalendar(zone);
      const reference = zonedCalendarWindow(zone);
      for (let i = 0; i < 100; i++) {
        const seconds = Math.floor(9.4e8 + random.next() * 1e9); // 1999 to 2031
        for (const g of GRANULARITIES) {
          const start = calendar.start(g, seconds * 1000);
          const what = `${zone} ${g} of ${new Date(seconds * 1000).toISOString()}`;
          assert.deepEqual({ start: start / 1000, end: calendar.end(g, start) / 1000 }, reference(g, seconds), what);
          if (g !== 'minute' && g !== 'hour') assert.equal(Date.parse(calendar.iso(start)), start, what);
        }
      }
    }
  });
});
