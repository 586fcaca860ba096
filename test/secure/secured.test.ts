/**
 * Every tickflow command against a secured Kafka (SASL_SSL, SCRAM-SHA-512, the ACLs of
 * src/log/acls.ts, started by `npm run infra:up -- --secure`) and a secured PostgreSQL of
 * the test's own (ssl=on, hostssl + scram-sha-256 only), with verify-full TLS on both
 * sides: the CA given, the host name checked. Each command runs as its own principal and
 * role; secrets reach it only through the environment and files. Then the failures, each
 * with its exact one-line message: a wrong password, an unknown CA, a host name the
 * certificate does not list, a principal without the ACL (topic, group, transactional id), a
 * plaintext client on the TLS port, PostgreSQL's certificate for another host and a wrong
 * password. indicators and clean-users run exactly once (their default: Kafka transactions
 * under the TransactionalId ACLs of the table), and each producer once with --transactional.
 *
 * Skipped, saying why, when the secured broker is not running.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { resolveTls } from '../../src/db/tls.ts';
import { KafkaLog } from '../../src/log/kafka.ts';
import { apiUrl, startTickflow, tickflow } from '../helpers/cli.ts';
import type { CliResult } from '../helpers/cli.ts';
import { kafkaEnv, kafkaPassword, secureKafka, startSecurePostgres } from '../helpers/secure-infra.ts';
import type { SecureKafka, SecurePostgres } from '../helpers/secure-infra.ts';
import { waitFor } from '../stocks/fixtures.ts';

const found = await secureKafka();
const skip = typeof found === 'string' ? found : false;

describe('secured Kafka (SASL_SSL, SCRAM-SHA-512, ACLs) and PostgreSQL (verify-full)', { skip }, () => {
  const kafka = found as SecureKafka;
  let db: SecurePostgres;
  let admin: KafkaLog;
  let dir: string;
  /** Runs a command as `principal` (and with `database` as DATABASE_URL), fails on a non-zero exit. */
  const as = async (principal: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> => {
    const r = await tickflow(args, { env: { ...kafkaEnv(kafka, principal), DATABASE_URL: '', ...env }, timeoutMs: 120_000 });
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  /** The one line of a failed command, which must exit 3 (Kafka) or 4 (PostgreSQL). */
  const failure = async (principal: string, args: string[], env: NodeJS.ProcessEnv, exit: number): Promise<string> => {
    const r = await tickflow(args, { env: { ...kafkaEnv(kafka, principal), DATABASE_URL: '', ...env }, timeoutMs: 60_000 });
    assert.equal(r.code, exit, r.stderr);
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    return lines[0];
  };
  /**
   * Waits (up to 10 s) until no transaction is open on the topic: a commit returns once it is
   * decided, the markers that make its records readable at read_committed follow.
   */
  const settled = async (topic: string): Promise<void> => {
    for (const started = Date.now(); Date.now() - started < 10_000; await new Promise((resolve) => setTimeout(resolve, 100))) {
      if ((await admin.stableOffsets(topic)).every((p) => p.lastStable === p.highWatermark)) return;
    }
  };
  const values = async (topic: string): Promise<Buffer[]> => {
    await settled(topic);
    const out: Buffer[] = [];
    for await (const batch of admin.readRange({ topic })) for (const r of batch) if (r.value) out.push(Buffer.from(r.value));
    return out;
  };
  /** Records a read_committed reader sees in a topic now (all partitions), as the admin; commit markers take offsets but are no records. */
  const total = async (topic: string): Promise<number> => (await values(topic)).length;
  /** The offsets a topic spans (records and transaction markers), as the admin sees them. */
  const span = async (topic: string): Promise<number> => (await admin.offsets(topic)).reduce((n, p) => n + Number(p.latest - p.earliest), 0);
  /** One query over verify-full TLS, as the superuser unless another URL is given. */
  const query = async <T extends pg.QueryResultRow>(sql: string, url = db.adminUrl): Promise<T[]> => {
    const { connectionString, ssl } = resolveTls(url);
    const client = new pg.Client({ connectionString, ssl });
    await client.connect();
    try {
      return (await client.query<T>(sql)).rows;
    } finally {
      await client.end();
    }
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tickflow-secure-'));
    db = await startSecurePostgres(kafka);
    admin = new KafkaLog({ brokers: [kafka.brokers], tls: { ca: readFileSync(kafka.ca, 'utf8') }, sasl: { mechanism: 'SCRAM-SHA-512', username: 'admin', password: kafkaPassword(kafka, 'admin') } });
  });
  after(async () => {
    await admin?.close();
    await db?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  describe('each command completes as its own principal', () => {
    it('produce prices writes exactly the records it reports, also in a transaction under its own id prefix', async () => {
      const before = await total('prices');
      const r = await as('tf-produce-prices', ['produce', 'prices', '-n', '500', '--seed', '11', '--json']);
      assert.equal(JSON.parse(r.stdout).messages, 500);
      assert.equal(await total('prices'), before + 500);
      const t = await as('tf-produce-prices', ['produce', 'prices', '-n', '300', '--seed', '12', '--transactional', '--json']);
      assert.deepEqual(JSON.parse(t.stdout).transactions, { transactionalId: 'tickflow-produce-prices-prices', committed: 300, transactions: 1, aborted: 0 });
      assert.equal(await total('prices'), before + 800);
    });

    it('stats counts per symbol what the topic holds', async () => {
      const r = await as('tf-stats', ['stats', '--json']);
      const stats = JSON.parse(r.stdout) as { count: number; symbols: { symbol: string; count: number }[] };
      const expected = new Map<string, number>();
      for (const v of await values('prices')) {
        const symbol = (JSON.parse(v.toString()) as { symbol: string }).symbol;
        expected.set(symbol, (expected.get(symbol) ?? 0) + 1);
      }
      assert.equal(stats.count, await total('prices'));
      assert.deepEqual(new Map(stats.symbols.map((s) => [s.symbol, s.count])), expected);
    });

    it('generate stocks, then aggregate stocks into PostgreSQL (writer role, verify-full): every ticker price in a window', async () => {
      const start = new Date(Date.now() - 20 * 60_000).toISOString();
      const generated = await as('tf-generate-stocks', ['generate', 'stocks', '--count', '300', '--rate', '2000', '--seed', '5', '--start-time', start, '--transactional', '--transaction-size', '100', '--json']);
      assert.deepEqual(JSON.parse(generated.stdout).transactions, { transactionalId: 'tickflow-generate-stocks-stocks', committed: 300, transactions: 3, aborted: 0 });
      // A message holds 1 to 3 tickers: a window counts tickers, not messages.
      let ticks = 0;
      for (const v of await values('stocks')) ticks += (JSON.parse(v.toString()) as { tickers: unknown[] }).tickers.length;
      const aggregator = startTickflow(
        ['aggregate', 'stocks', '--window', '1s', '--allowed-lateness', '100ms', '--idle-timeout', '200ms', '--max-time-skew', '3650d', '--commit-interval', '200ms'],
        { ...kafkaEnv(kafka, 'tf-aggregate-stocks'), ...db.writerEnv },
      );
      const { child } = aggregator;
      try {
        const counted = async (): Promise<number> =>
          Number((await query<{ n: string }>('SELECT coalesce(sum(sample_count), 0)::text AS n FROM stock_windows').catch(() => [{ n: '0' }]))[0].n);
        await waitFor(async () => child.exitCode !== null || (await counted()) === ticks, `${ticks} samples in stock_windows`, 90_000);
        assert.equal(child.exitCode, null, aggregator.stderr());
        assert.equal(await counted(), ticks);
      } finally {
        child.kill('SIGTERM');
        assert.equal(await aggregator.exited, 0, aggregator.stderr());
      }
    });

    it('indicators --until-end, exactly once (Kafka transactions), publishes one point per price it reads', async () => {
      const beforeOut = await total('volatility');
      const beforeDlq = await total('prices-dlq');
      // The group's offsets commit in its Kafka transactions: on a broker kept from an earlier run the records
      // below them were published then; with a new database they are read again silently (state only).
      await settled('prices');
      const committed = await admin.committed('tickflow-indicators', 'prices');
      let fresh = 0;
      for await (const batch of admin.readRange({ topic: 'prices', from: committed })) fresh += batch.length;
      const r = await as('tf-indicators', ['indicators', '--until-end', '--json'], { ...db.writerEnv });
      const report = JSON.parse(r.stdout) as { read: number; published: number; deadLettered: number };
      assert.equal(report.read, await total('prices'));
      assert.equal(await total('volatility'), beforeOut + report.published);
      assert.equal(await total('prices-dlq'), beforeDlq + report.deadLettered);
      assert.equal(report.published + report.deadLettered, fresh, 'one output per price not published before: every price, on a new broker');
    });

    it('archive --until-end stores every record of prices', async () => {
      const r = await as('tf-archive', ['archive', '--input', 'prices', '--until-end', '--json'], { ...db.writerEnv });
      const prices = await total('prices');
      assert.equal((JSON.parse(r.stdout) as { read: number }).read, prices);
      assert.equal(Number((await query<{ n: string }>("SELECT count(*)::text AS n FROM archived_messages WHERE topic = 'prices'"))[0].n), prices);
    });

    it('replay sends users and user-tracker frames; clean-users and unique-users --until-end read them', async () => {
      const users = join(dir, 'users.jsonl');
      const frames = join(dir, 'frames.jsonl');
      assert.equal((await tickflow(['generate', 'users', '--count', '300', '--seed', '3', '-o', users])).code, 0);
      assert.equal((await tickflow(['generate', 'users', '--frames', '--count', '400', '--seed', '3', '-o', frames])).code, 0);
      const beforeUsers = await total('users');
      const beforeFrames = await total('user-tracker');
      await as('tf-replay', ['replay', users, '--output', 'users', '--transactional', '--json']);
      await as('tf-replay', ['replay', frames, '--output', 'user-tracker', '--json']);
      assert.equal(await total('users'), beforeUsers + 300);
      assert.equal(await total('user-tracker'), beforeFrames + 400);

      const outputs = async (): Promise<number[]> => Promise.all(['users-clean', 'users-dlq', 'unique-users', 'user-tracker-late'].map(total));
      const [clean0, dead0] = await outputs();
      // Exactly once, its default on Kafka: clean records, dead letters and reports in Kafka transactions.
      const clean = await as('tf-clean-users', ['clean-users', '--until-end', '--json']);
      const summary = (JSON.parse(clean.stdout.trimEnd().split('\n').at(-1) as string) as { summary: { read: number; clean: number; deadLettered: number } }).summary;
      assert.equal(summary.read, await total('users'));
      const [clean1, dead1, minutes1, late1] = await outputs();
      assert.equal(clean1 - clean0, summary.clean);
      assert.equal(dead1 - dead0, summary.deadLettered);
      assert.equal(summary.clean + summary.deadLettered, summary.read);

      const unique = await as('tf-unique-users', ['unique-users', '--until-end', '--json', '--allowed-lateness', '1h']);
      const u = JSON.parse(unique.stdout.trimEnd().split('\n').at(-1) as string) as { frames: number; counted: number; late: number; invalid: number; minutes: number };
      assert.equal(u.frames, await total('user-tracker'));
      assert.equal(u.counted + u.late + u.invalid, u.frames);
      const [, dead2, minutes2, late2] = await outputs();
      assert.equal(minutes2 - minutes1, u.minutes);
      assert.equal(late2 - late1, u.late);
      assert.equal(dead2 - dead1, u.invalid);
    });

    it('monitor shows every topic with the offsets the admin sees, and the transactions open on them', async () => {
      const r = await as('tf-monitor', ['monitor', '--json'], { ...db.writerEnv });
      const report = JSON.parse(r.stdout) as { topics: { topic: string; messages: number }[] };
      const prices = report.topics.find((t) => t.topic === 'prices');
      assert.equal(prices?.messages, await span('prices'));
      // A transaction the admin keeps open on a topic of its own: tf-monitor may describe every transactional id.
      const topic = `secure-open-${process.pid}`;
      await admin.createTopics([{ name: topic, partitions: 1 }]);
      const open = admin.transactionalProducer(`${topic}-txn`);
      try {
        await open.init();
        await open.send(topic, [{ value: 'held' }]);
        const listed = await as('tf-monitor', ['monitor', '--json', '--topics', topic], { ...db.writerEnv });
        const snapshot = JSON.parse(listed.stdout) as { transactions: { transactionalId: string; partitions: string[] }[]; topics: { partitions: { lastStable: string; highWatermark: string }[] }[] };
        assert.deepEqual(snapshot.transactions.map((t) => [t.transactionalId, t.partitions]), [[`${topic}-txn`, [`${topic}[0]`]]]);
        assert.deepEqual(snapshot.topics[0].partitions.map((p) => [p.lastStable, p.highWatermark]), [['0', '1']]);
      } finally {
        await open.abort();
        await open.close();
        await admin.deleteTopics([topic]);
      }
    });

    it('api serves the windows through the read-only role', async () => {
      const api = startTickflow(['api', '--host', '127.0.0.1', '--port', '0', '--json'], { ...kafkaEnv(kafka, 'tf-api'), DATABASE_URL: '', ...db.readerEnv });
      const { child } = api;
      try {
        const url = await apiUrl(api);
        assert.equal((await fetch(`${url}/readyz`)).status, 200);
        // No parameters: the latest window of every ticker.
        const latest = await query<{ ticker: string; n: string }>('SELECT DISTINCT ON (ticker) ticker, sample_count::text AS n FROM stock_windows ORDER BY ticker, window_start DESC');
        const answer = (await (await fetch(`${url}/v1/get-prices`)).json()) as { data: { ticker: string; sampleCount: number }[] };
        assert.deepEqual(new Map(answer.data.map((w) => [w.ticker, w.sampleCount])), new Map(latest.map((r) => [r.ticker, Number(r.n)])));
        assert.ok(latest.length > 0);
        const dashboard = await fetch(`${url}/v1/dashboard`);
        assert.equal(dashboard.status, 200, await dashboard.clone().text());
      } finally {
        child.kill('SIGTERM');
        assert.equal(await api.exited, 0, api.stderr());
      }
      // The reader cannot write.
      await assert.rejects(query('DELETE FROM stock_windows', db.readerUrl), (e: { code?: string }) => e.code === '42501');
    });
  });

  describe('each failure is one line that says which', () => {
    it('a wrong SCRAM password', async () => {
      const file = join(dir, 'wrong.password');
      writeFileSync(file, 'not-the-password\n');
      const line = await failure('tf-produce-prices', ['produce', 'prices', '-n', '10'], { KAFKA_SASL_PASSWORD_FILE: file }, 3);
      assert.equal(line, `tickflow produce prices: list topics: SASL authentication of user tf-produce-prices (SCRAM-SHA-512) failed at ${kafka.brokers}: wrong user name or password`);
    });

    it('a CA that did not sign the broker certificate', async () => {
      const line = await failure('tf-produce-prices', ['produce', 'prices', '-n', '10'], { KAFKA_CA_FILE: kafka.otherCa }, 3);
      assert.equal(line, `tickflow produce prices: list topics: TLS: the certificate of ${kafka.brokers} is not signed by a trusted CA (UNABLE_TO_VERIFY_LEAF_SIGNATURE); give the cluster's CA with --kafka-ca or KAFKA_CA_FILE`);
    });

    it('a host name the broker certificate does not list', async () => {
      const broker = `127.0.0.1:${kafka.port}`;
      const line = await failure('tf-produce-prices', ['produce', 'prices', '-n', '10'], { KAFKA_BROKERS: broker }, 3);
      assert.equal(
        line,
        `tickflow produce prices: list topics: TLS: the certificate of ${broker} is not for that host name (Hostname/IP does not match certificate's altnames: IP: 127.0.0.1 is not in the cert's list:); connect by a name the certificate lists`,
      );
    });

    it('a principal writing a topic it has no ACL for: denied, reported, nothing written', async () => {
      const before = await total('prices');
      const line = await failure('tf-indicators', ['produce', 'prices', '-n', '10'], {}, 3);
      assert.match(line, /^tickflow produce prices: produce to prices \[partition [0-2]\]: not authorized: user tf-indicators may not use topic prices \(TOPIC_AUTHORIZATION_FAILED\); the cluster needs an ACL for it \(tickflow acls --print\)$/);
      assert.equal(await total('prices'), before);
    });

    it('a principal reading a topic it has no ACL for', async () => {
      const line = await failure('tf-stats', ['stats', '--input', 'stocks'], {}, 3);
      assert.equal(line, 'tickflow stats: list offsets of stocks: not authorized: user tf-stats may not use topic stocks (TOPIC_AUTHORIZATION_FAILED); the cluster needs an ACL for it (tickflow acls --print)');
    });

    it('a principal writing in a transaction under an id it has no ACL for: denied, reported as such (not as fenced), nothing written', async () => {
      const before = await span('prices');
      const line = await failure('tf-produce-prices', ['produce', 'prices', '-n', '10', '--transactional', '--transactional-id', 'not-mine'], {}, 3);
      assert.equal(
        line,
        'tickflow produce prices: initialise the transactional producer: not authorized: user tf-produce-prices may not use transactional id not-mine (TRANSACTIONAL_ID_AUTHORIZATION_FAILED); the cluster needs an ACL allowing Write on TransactionalId not-mine or a prefix of it (tickflow acls --print)',
      );
      assert.equal(await span('prices'), before);
    });

    it('a principal using a consumer group it has no ACL for', async () => {
      const line = await failure('tf-indicators', ['indicators', '--group', 'not-mine', '--until-end'], db.writerEnv, 3);
      assert.equal(line, 'tickflow indicators: join group not-mine: not authorized: user tf-indicators may not use this consumer group (GROUP_AUTHORIZATION_FAILED); the cluster needs an ACL for it (tickflow acls --print)');
    });

    it('a plaintext client on the TLS port', async () => {
      const line = await failure('tf-produce-prices', ['produce', 'prices', '-n', '10'], { KAFKA_CA_FILE: '', KAFKA_SASL_MECHANISM: '' }, 3);
      assert.equal(line, `tickflow produce prices: list topics: the listener at ${kafka.brokers} speaks TLS but this client connects without it; add --kafka-tls (and --kafka-ca)`);
    });

    it('PostgreSQL sslmode=verify-full against a certificate for another host', async () => {
      const line = await failure('tf-aggregate-stocks', ['migrate'], { DATABASE_URL: db.otherHostUrl }, 4);
      const where = db.otherHostUrl.replace(/:[0-9a-f]+@/, ':***@');
      assert.equal(
        line,
        `tickflow migrate: TLS: the certificate of database ${where} is not for that host name (Hostname/IP does not match certificate's altnames: IP: 127.0.0.1 is not in the cert's list:); connect by a name the certificate lists, or use sslmode=verify-ca`,
      );
    });

    it('PostgreSQL: a wrong password', async () => {
      const line = await failure('tf-aggregate-stocks', ['migrate'], { DATABASE_URL: db.wrongPasswordUrl }, 4);
      const where = db.wrongPasswordUrl.replace(/:[0-9a-f]+x@/, ':***@');
      assert.equal(line, `tickflow migrate: database ${where} refused the password (28P01: password authentication failed for user "tickflow_writer"); check the password of the URL's user`);
    });
  });
});
