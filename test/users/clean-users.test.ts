import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import { COUNTRIES } from '../../src/core/countries.ts';
import { REJECT_REASONS, cleanUserJson } from '../../src/core/user-record.ts';
import { KafkaLog } from '../../src/log/kafka.ts';
import { KAFKA_BROKERS } from '../helpers/env.ts';
import { execFileSync, spawn } from 'node:child_process';
import { BIN } from '../helpers/cli.ts';
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

  it('dead-letters dates in 2999 and 1850 as implausible-date, apart from malformed dates: produced = clean + dead-lettered, each reason right', async () => {
    const input = unique('users-dates');
    const generated = await run(['generate', 'users', '--count', '2000', '--seed', 'clean-users-dates']);
    assert.equal(generated.code, 0, generated.stderr);
    const lines = generated.stdout.split('\n').filter((l) => l !== '');
    // Valid in every other field, with an implausible date in one of the formats the cleaner reads.
    const implausible = ['2999-01-01', 'March 4, 2999', '2999/12/31', '15-Jun-1850', '01.01.1850', '1850-06-15T12:00:00Z'];
    const injected = Array.from({ length: 60 }, (_, i) => ({ id: `date-${i}`, date: implausible[i % implausible.length] }));
    const malformed = Array.from({ length: 6 }, (_, i) => ({ id: `malformed-${i}`, date: i % 2 === 0 ? '2999-02-30' : '1850-13-01' }));
    const record = ({ id, date }: { id: string; date: string }) => JSON.stringify({ id, first_name: 'Ana', last_name: 'Ruiz', email: `${id}@example.ch`, gender: 'Female', ip_address: '10.1.2.3', date, country: 'peru' });
    // Spread among the generated records.
    const texts = [...lines];
    [...injected, ...malformed].forEach((r, i) => texts.splice((i * 31) % texts.length, 0, record(r)));
    const replayed = await run(['replay', '-', '--output', input, '--key', 'id', '--partitions', '3', ...BROKERS], { input: `${texts.join('\n')}\n` });
    assert.equal(replayed.code, 0, replayed.stderr);
    const produced = (await log.offsets(input)).reduce((n, p) => n + Number(p.latest - p.earliest), 0);
    assert.equal(produced, lines.length + injected.length + malformed.length);
    // What the generated records give without any range (their dates lie in 1950..2023).
    const before = new Map<string, number>();
    for (const line of lines) {
      const result = cleanUserJson(line);
      const key = result.ok ? 'clean' : result.reason;
      before.set(key, (before.get(key) ?? 0) + 1);
    }

    const output = unique('users-dates-out');
    const dead = unique('users-dates-dead');
    const result = await run(['clean-users', '--until-end', '--input', input, '--output', output, '--dead-letter-topic', dead, '--stats-topic', unique('users-dates-stats'), '--json', ...BROKERS]);
    assert.equal(result.code, 0, result.stderr);
    const summary = jsonLines<{ summary?: { read: number; clean: number; deadLettered: number; reasons: Record<string, number> } }>(result.stdout).at(-1)!.summary!;
    const clean = await readAll(log, output);
    const rejected = await readAll(log, dead);
    assert.equal(clean.length + rejected.length, produced, 'produced = clean + dead-lettered');
    assert.deepEqual([summary.read, summary.clean, summary.deadLettered], [produced, clean.length, rejected.length]);
    assert.equal(clean.length, before.get('clean'), 'every generated record that was clean still is');
    const idOf = (value: string): unknown => {
      try {
        return (JSON.parse(value) as { id?: unknown } | null)?.id;
      } catch {
        return undefined;
      }
    };
    const idsBy = (reason: string) => rejected.filter((r) => r.headers['x-reason'] === reason).map((r) => idOf(r.value)).filter((id) => typeof id === 'string' && /^(date|malformed)-/.test(id)).sort();
    assert.deepEqual(idsBy('implausible-date'), injected.map((r) => r.id).sort(), 'each implausible date, and only those');
    assert.deepEqual(idsBy('bad-date'), malformed.map((r) => r.id).sort(), 'impossible dates stay bad-date');
    assert.equal(summary.reasons['implausible-date'], injected.length);
    assert.equal(summary.reasons['bad-date'], (before.get('bad-date') ?? 0) + malformed.length);
    for (const r of rejected.filter((r) => r.headers['x-reason'] === 'implausible-date')) {
      assert.match(r.headers['x-error'], /^date (2999|1850)-\d{2}-\d{2}\S* \(".+"\) lies outside the plausible range 1900-01-01T00:00:00\.000Z \.\. \d{4}-/);
    }

    // A range of one's own: 1800-01-01..now+1d makes the 1850 dates clean; 2999 stays implausible.
    const wider = await run(['clean-users', '--until-end', '--input', input, '--output', unique('users-dates-out2'), '--dead-letter-topic', unique('users-dates-dead2'), '--stats-topic', unique('users-dates-stats2'), '--plausible-dates', '1800-01-01..now+1d', '--json', ...BROKERS]);
    assert.equal(wider.code, 0, wider.stderr);
    const reasons = jsonLines<{ summary?: { reasons: Record<string, number> } }>(wider.stdout).at(-1)!.summary!.reasons;
    assert.equal(reasons['implausible-date'], injected.filter((r) => r.date.includes('2999')).length);
  });

  it('exactly once (the default) across kill -9 three times, once in an open transaction: clean + dead-lettered = produced, each once, as an uninterrupted run; kcat agrees', async () => {
    const input = unique('users-eo');
    const [output, dead, stats] = [unique('users-eo-clean'), unique('users-eo-dead'), unique('users-eo-stats')];
    const group = unique('clean-users-eo');
    const generated = await run(['generate', 'users', '--count', '30000', '--seed', 'clean-users-eo']);
    assert.equal(generated.code, 0, generated.stderr);
    const lines = generated.stdout.split('\n').filter((l) => l !== '');
    await log.createTopics([{ name: input, partitions: 3 }]);
    const uncommitted = new KafkaLog({ brokers: KAFKA_BROKERS, isolationLevel: 'read_uncommitted' });
    const committed = async () => [...(await log.committed(group, input).catch(() => new Map<number, bigint>())).values()].reduce((n, o) => n + o, 0n);
    try {
      // The records stream in (15 chunks, 2.5 s apart) while the service runs, is killed and restarted.
      const feeding = (async () => {
        const producer = log.producer();
        for (let i = 0; i < lines.length; i += 2000) {
          await producer.send(input, lines.slice(i, i + 2000).map((value, j) => ({ key: String(i + j), value })));
          await new Promise((resolve) => setTimeout(resolve, 2500));
        }
        await producer.close();
      })();
      const service = ['clean-users', '--input', input, '--output', output, '--dead-letter-topic', dead, '--stats-topic', stats, '--group', group, '--window', '1h', ...BROKERS];
      // Three runs killed -9: the first while a transaction holds clean records (high
      // watermark above the last stable offset), the others at a random moment after their
      // first commit.
      const kills: string[] = [];
      for (let kill = 0; kill < 3; kill++) {
        const before = await committed();
        const child = spawn(process.execPath, [BIN, ...service], { env: { ...process.env, LOG_LEVEL: 'warn' }, stdio: 'ignore' });
        const exited = new Promise((resolve) => child.on('close', (_code, signal) => resolve(signal)));
        let moment: string;
        if (kill === 0) {
          let open = 0n;
          for (const started = Date.now(); open === 0n && Date.now() - started < 60_000;) {
            const [stable, high] = await Promise.all([log.offsets(output).catch(() => []), uncommitted.offsets(output).catch(() => [])]);
            open = high.reduce((n, p, i) => n + p.latest - (stable[i]?.latest ?? p.latest), 0n);
          }
          assert.ok(open > 0n, 'a transaction held clean records within 60 s');
          moment = `in a transaction holding ${open} records`;
        } else {
          for (let i = 0; (await committed()) <= before && before < BigInt(lines.length); i++) {
            if (i > 1200) assert.fail(`run ${kill + 1} committed nothing in 2 minutes`);
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
          const delay = Math.floor(Math.random() * 1500);
          await new Promise((resolve) => setTimeout(resolve, delay));
          moment = `${delay} ms after its first commit`;
        }
        child.kill('SIGKILL');
        assert.equal(await exited, 'SIGKILL');
        kills.push(`kill ${kill + 1} ${moment}, ${await committed()} offsets committed`);
      }
      await feeding;
      // The last restart commits every offset (exactly once: stopping it by kill -9 too loses nothing).
      const last = spawn(process.execPath, [BIN, ...service], { env: { ...process.env, LOG_LEVEL: 'warn' }, stdio: 'ignore' });
      const lastExit = new Promise((resolve) => last.on('close', (_code, signal) => resolve(signal)));
      for (let i = 0; (await committed()) < BigInt(lines.length); i++) {
        if (i > 1200) assert.fail('the restarted service did not commit every offset in 2 minutes');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      last.kill('SIGKILL');
      assert.equal(await lastExit, 'SIGKILL');

      const referenceOutput = unique('users-eo-ref');
      const reference = await run(['clean-users', '--until-end', '--input', input, '--output', referenceOutput, '--dead-letter-topic', unique('users-eo-ref-dead'), '--stats-topic', unique('users-eo-ref-stats'), '--window', '1h', '--json', ...BROKERS]);
      assert.equal(reference.code, 0, reference.stderr);
      const summary = jsonLines<{ summary?: { clean: number; deadLettered: number } }>(reference.stdout).at(-1)!.summary!;
      const clean = await readAll(log, output);
      const rejected = await readAll(log, dead);
      assert.equal(clean.length + rejected.length, lines.length, 'clean + dead-lettered = produced');
      assert.deepEqual([clean.length, rejected.length], [summary.clean, summary.deadLettered], 'as the uninterrupted run');
      const sources = new Set(rejected.map((r) => `${r.headers['x-source-partition']}@${r.headers['x-source-offset']}`));
      assert.equal(sources.size, rejected.length, 'each dead letter once');
      // Every clean record as the uninterrupted run has it, as many times (the data repeats some users).
      const sorted = (records: Array<{ value: string }>) => records.map((r) => r.value).sort();
      assert.deepEqual(sorted(clean), sorted(await readAll(log, referenceOutput)), 'the same clean records, each once');
      const kcat = execFileSync('/usr/bin/kcat', ['-b', KAFKA_BROKERS[0], '-C', '-t', output, '-X', 'isolation.level=read_committed', '-e', '-q', '-f', '%k\\n'], { encoding: 'utf8', maxBuffer: 64 << 20 });
      assert.equal(kcat.split('\n').filter(Boolean).length, clean.length, 'kcat at read_committed');
      console.log(`# clean-users: ${kills.join('; ')}; ${clean.length} clean + ${rejected.length} dead-lettered = ${lines.length}`);
    } finally {
      await uncommitted.close();
    }
  });

  it('validates its flags with one line', async () => {
    const result = await run(['clean-users', '--date-order', 'ydm']);
    assert.equal(result.code, 2);
    assert.equal(result.stderr, 'tickflow clean-users: --date-order: expects one of dmy, mdy, got "ydm" (see --help)\n');
    const range = await run(['clean-users', '--plausible-dates', '2000-01-01..1990-01-01']);
    assert.equal(range.code, 2);
    assert.equal(range.stderr, 'tickflow clean-users: --plausible-dates: FROM is after TO (expects FROM..TO such as 1900-01-01..now+1d), got "2000-01-01..1990-01-01" (see --help)\n');
    const relative = await run(['clean-users', '--plausible-dates', '1900-01-01..now+soon']);
    assert.equal(relative.code, 2);
    assert.match(relative.stderr, /^tickflow clean-users: --plausible-dates: "now\+soon" is not now plus or minus a duration such as 1d or 12h/);
    // A bounded run reads without a group: a --group given with it is said to be ignored, in one line (its default is not).
    const warning = 'tickflow clean-users: --group is ignored: a bounded run (--until-end, --input -) reads without a consumer group\n';
    const group = await run(['clean-users', '--input', '-', '--output', '-', '--group', 'mine'], { input: '' });
    assert.equal(group.code, 0, group.stderr);
    assert.ok(group.stderr.startsWith(warning), group.stderr);
    const unnamed = await run(['clean-users', '--input', '-', '--output', '-'], { input: '' });
    assert.equal(unnamed.code, 0, unnamed.stderr);
    assert.ok(!unnamed.stderr.includes('--group'), unnamed.stderr);
  });
});
