import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GRANULARITIES, parseGranularities, windowEnd, windowIso, windowStart } from '../../src/core/calendar-windows.ts';
import { seededRandom } from '../../src/core/random.ts';
import { calendarWindow } from '../users/reference.ts';

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
