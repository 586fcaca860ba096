import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import { COUNTRIES } from '../../src/core/countries.ts';
import { REJECT_REASONS, cleanUserJson } from '../../src/core/user-record.ts';
import { KafkaLog } from '../../src/log/kafka.ts';
import { KAFKA_BROKERS } from '../helpers/env.ts';
import { BROKERS, jsonLines, readAll, run, unique } from './helpers.ts';

describe('clean-users on real Kafka', () => {
  let log: KafkaLog;
  before(() => {
    log = new KafkaLog({ brokers: KAFKA_BROKERS });
  });
  after(async () => {
    await log.close();
  });

  it('produced = clean + dead-lettered, exactly; every record conformed or dead-lettered with its reason; stats per window', async () => {
    const input = unique('users');
    const output = unique('users-clean');
    const dead = unique('users-dead');
    const stats = unique('users-stats');
    const generated = await run(['generate', 'users', '--count', '3000', '--seed', 'clean-users-it']);
    assert.equal(generated.code, 0, generated.stderr);
    // A few records no JSON parser accepts, sent around replay (which would refuse them).
    const producer = log.producer();
    await log.createTopics([{ name: input, partitions: 3 }]);
    await producer.send(input, [{ value: '{"id": 1, "email": ' }, { value: 'id,first_name\n1,Anna' }]);
    await producer.close();
    const replayed = await run(['replay', '-', '--output', input, '--key', 'id', ...BROKERS], { input: generated.stdout });
    assert.equal(replayed.code, 0, replayed.stderr);
    const produced = (await log.offsets(input)).reduce((n, p) => n + Number(p.latest - p.earliest), 0);
    assert.equal(produced, 3002);

    const result = await run(['clean-users', '--until-end', '--input', input, '--output', output, '--dead-letter-topic', dead, '--stats-topic', stats, '--window', '1h', '--json', ...BROKERS]);
    assert.equal(result.code, 0, result.stderr);
    const lines = jsonLines<Record<string, unknown>>(result.stdout);
    const summary = lines.at(-1)!.summary as { read: number; clean: number; deadLettered: number; reasons: Record<string, number> };

    const clean = await readAll(log, output);
    const rejected = await readAll(log, dead);
    assert.equal(summary.read, produced);
    assert.equal(clean.length + rejected.length, produced, 'produced = clean + dead-lettered');
    assert.deepEqual([summary.clean, summary.deadLettered], [clean.length, rejected.length]);
    assert.ok(clean.length > produced * 0.7, `most records are clean (${clean.length})`);

    // Dead letters: the original bytes, a declared reason that the cleaner gives for those bytes again.
    const originals = new Map((await readAll(log, input)).map((r) => [`${r.partition}@${r.offset}`, r.value]));
    const reasons = new Map<string, number>();
    for (const r of rejected) {
      const reason = r.headers['x-reason'];
      assert.ok((REJECT_REASONS as readonly string[]).includes(reason), reason);
      assert.ok(r.headers['x-error'].length > 0);
      assert.equal(r.value, originals.get(`${r.headers['x-source-partition']}@${r.headers['x-source-offset']}`), 'byte for byte');
      const again = cleanUserJson(r.value);
      assert.ok(!again.ok && again.reason === reason);
      reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
    }
    assert.equal(reasons.get('not-json'), 2);
    for (const reason of ['bad-email', 'bad-ip', 'bad-date', 'ambiguous-date']) assert.ok((reasons.get(reason) ?? 0) > 0, `generated dirt includes ${reason}`);
    assert.deepEqual(Object.fromEntries(reasons), summary.reasons);

    // Clean records: conformed.
    const known = new Set(COUNTRIES);
    let knownCountries = 0;
    for (const r of clean) {
      const user = JSON.parse(r.value) as { id: number; email: string; ip_address: string; date: string; country: string };
      assert.equal(r.key, String(user.id));
      assert.match(user.date, /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d{3})?Z?)?$/);
      assert.notEqual(isIP(user.ip_address), 0);
      assert.match(user.country, /^\p{Lu}/u);
      if (known.has(user.country)) knownCountries++;
    }
    assert.ok(knownCountries > clean.length * 0.99, 'lower case, upper case, aliases and typos all land on canonical names');

    // Stats: one window here (everything was written within the hour), to stdout and to the topic.
    const windows = lines.slice(0, -1) as Array<{ records: number; uniqueUsers: number; most: { countries: string[]; count: number }; least: { countries: string[]; count: number } }>;
    const sent = (await readAll(log, stats)).map((r) => JSON.parse(r.value) as typeof windows[number]);
    assert.deepEqual(sent, windows);
    assert.equal(windows.reduce((n, w) => n + w.records, 0), clean.length);
    const ids = new Set(clean.map((r) => r.key));
    if (windows.length === 1) {
      assert.equal(windows[0].uniqueUsers, ids.size, 'distinct users by id (duplicates counted once)');
      const byCountry = new Map<string, number>();
      for (const r of clean) {
        const c = (JSON.parse(r.value) as { country: string }).country;
        byCountry.set(c, (byCountry.get(c) ?? 0) + 1);
      }
      const max = Math.max(...byCountry.values());
      const min = Math.min(...byCountry.values());
      assert.deepEqual(windows[0].most, { countries: [...byCountry].filter(([, n]) => n === max).map(([c]) => c).sort(), count: max });
      assert.deepEqual(windows[0].least, { countries: [...byCountry].filter(([, n]) => n === min).map(([c]) => c).sort(), count: min });
    }
    assert.ok(ids.size < clean.length, 'the duplicates in the data make unique users fewer than records');
  });

  it('reads ambiguous dates with --date-order instead of dead-lettering them', async () => {
    const input = unique('users-order');
    const records = ['{"id":1,"email":"a@b.ch","ip_address":"1.2.3.4","date":"03/04/2020","country":"peru"}'];
    const replayed = await run(['replay', '-', '--output', input, ...BROKERS], { input: records.join('\n') });
    assert.equal(replayed.code, 0, replayed.stderr);
    const output = unique('users-order-out');
    const result = await run(['clean-users', '--until-end', '--input', input, '--output', output, '--dead-letter-topic', unique('d'), '--stats-topic', unique('s'), '--date-order', 'dmy', ...BROKERS]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /most: Peru \(1\); least: Peru \(1\); 1 records, 1 unique users\n/);
    assert.match(result.stdout, /read 1: 1 clean → .*, 0 dead-lettered/);
    const [user] = await readAll(log, output);
    assert.equal((JSON.parse(user.value) as { date: string }).date, '2020-04-03');
  });

  it('validates its flags with one line', async () => {
    const result = await run(['clean-users', '--date-order', 'ydm']);
    assert.equal(result.code, 2);
    assert.equal(result.stderr, 'tickflow clean-users: --date-order: expects one of dmy, mdy, got "ydm" (see --help)\n');
  });
});
