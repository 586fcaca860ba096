/**
 * `npm run bench -- indicators [--messages 1000000] [--symbols 20] [--updates 10000000]`
 *
 * 1. The pure operators: updates/s of Ema, MovingVolatility and SymbolIndicators, and of
 *    decode + update + encode (the CPU work per message, no I/O).
 * 2. The pipeline on the real Kafka and PostgreSQL: N seeded prices in a fresh 3-partition
 *    topic, then `tickflow indicators --until-end` as a child process (end to end,
 *    process start included) and the same pipeline in-process, each with its own group
 *    and output topic, exactly once (Kafka transactions, --commit-interval, default 1s)
 *    and --at-least-once; next to a plain read of the same topic (the ceiling for a consumer).
 * Brokers from KAFKA_BROKERS (default 127.0.0.1:9092); PostgreSQL from DATABASE_URL
 * (default postgres://postgres@127.0.0.1:5432/tickflow_bench), in a schema of its own
 * that is dropped at the end, as are the topics.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import pino from 'pino';
import { Ema } from '../src/core/ema.ts';
import { SymbolIndicators } from '../src/core/indicators.ts';
import { decodePriceMessage, encodeIndicatorMessage } from '../src/core/price-message.ts';
import { MovingVolatility } from '../src/core/volatility.ts';
import { createDatabaseIfMissing, openDatabase } from '../src/db/open.ts';
import { KafkaLog } from '../src/log/kafka.ts';
import { runIndicators } from '../src/pipelines/indicators.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'bin/tickflow.js');

function flag(args: string[], name: string, fallback: number): number {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1].replaceAll('_', '')) : fallback;
}

const rate = (n: number, seconds: number) => Math.round(n / seconds).toLocaleString('en-US');

function timed(fn: () => void): number {
  const start = performance.now();
  fn();
  return (performance.now() - start) / 1000;
}

function operators(updates: number): string[] {
  // Prices prepared up front so the generator is not measured.
  const prices = new Float64Array(1 << 16);
  let p = 100;
  for (let i = 0; i < prices.length; i++) prices[i] = p = Math.max(0.01, p * (1 + (Math.sin(i * 12.9898) * 43758.5453 % 1) * 0.01));
  const mask = prices.length - 1;
  let sink = 0;
  const ema = new Ema(100);
  const emaSeconds = timed(() => {
    for (let i = 0; i < updates; i++) sink += ema.update(prices[i & mask]);
  });
  const vol = new MovingVolatility(100);
  const volSeconds = timed(() => {
    for (let i = 0; i < updates; i++) sink += vol.update(prices[i & mask]) ?? 0;
  });
  const symbols = Array.from({ length: 20 }, () => new SymbolIndicators(100));
  const bothSeconds = timed(() => {
    for (let i = 0; i < updates; i++) sink += symbols[i % 20].update(prices[i & mask]).ema;
  });
  const messages = Math.min(updates, 2_000_000);
  const texts = Array.from({ length: 4096 }, (_, i) => JSON.stringify({ ts: '2021-03-10 16:21:32.000', symbol: `SYM${i % 20}`, price: Math.round(prices[i] * 100) / 100 }));
  const state = new Map<string, SymbolIndicators>();
  const codecSeconds = timed(() => {
    for (let i = 0; i < messages; i++) {
      const decoded = decodePriceMessage(texts[i & 4095]);
      if (!decoded.ok) continue;
      const { symbol, price, ts } = decoded.value;
      let s = state.get(symbol);
      if (!s) state.set(symbol, (s = new SymbolIndicators(100)));
      sink += encodeIndicatorMessage({ symbol, ts, price, ...s.update(price) }).length;
    }
  });
  if (sink === 42) console.log('');
  return [
    '| operator | updates | seconds | updates/s |',
    '| --- | ---: | ---: | ---: |',
    `| Ema(100) | ${updates.toLocaleString('en-US')} | ${emaSeconds.toFixed(2)} | ${rate(updates, emaSeconds)} |`,
    `| MovingVolatility(100) | ${updates.toLocaleString('en-US')} | ${volSeconds.toFixed(2)} | ${rate(updates, volSeconds)} |`,
    `| SymbolIndicators(100), 20 symbols | ${updates.toLocaleString('en-US')} | ${bothSeconds.toFixed(2)} | ${rate(updates, bothSeconds)} |`,
    `| JSON decode + SymbolIndicators + JSON encode | ${messages.toLocaleString('en-US')} | ${codecSeconds.toFixed(2)} | ${rate(messages, codecSeconds)} |`,
  ];
}

export default async function indicatorsBench(args: string[]): Promise<void> {
  const messages = flag(args, 'messages', 1_000_000);
  const symbols = flag(args, 'symbols', 20);
  const updates = flag(args, 'updates', 10_000_000);
  const interval = args.includes('--commit-interval') ? args[args.indexOf('--commit-interval') + 1] : '1s';
  const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
  const databaseUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/tickflow_bench';
  const lines = [`## indicators (${new Date().toISOString()})`, '', ...operators(updates), ''];
  console.log(lines.join('\n'));

  const id = `${process.pid}-${randomBytes(3).toString('hex')}`;
  const input = `bench-prices-${id}`;
  const topics = [input, `${input}-dlq`, `bench-volatility-cli-${id}`, `bench-volatility-inproc-${id}`, `bench-volatility-cli-alo-${id}`, `bench-volatility-inproc-alo-${id}`];
  const log = new KafkaLog({ brokers });
  const schema = `bench_indicators_${id.replace(/-/g, '_')}`;
  await createDatabaseIfMissing(databaseUrl);
  const url = new URL(databaseUrl);
  url.searchParams.set('options', `-c search_path=${schema}`);
  const admin = new pg.Client({ connectionString: databaseUrl });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  const rows: string[] = ['| run | messages | seconds | msgs/s | peak RSS MiB | vs plain read |', '| --- | ---: | ---: | ---: | ---: | ---: |'];
  try {
    await log.createTopics([{ name: input, partitions: 3 }]);
    const producer = log.producer();
    let p = Array.from({ length: symbols }, (_, i) => 50 + i * 10);
    const produceStart = performance.now();
    for (let sent = 0; sent < messages; sent += 20_000) {
      const chunk = [];
      for (let i = sent; i < Math.min(messages, sent + 20_000); i++) {
        const s = i % symbols;
        p[s] = Math.max(0.01, Math.round(p[s] * (1 + (Math.random() - 0.5) * 0.004) * 100) / 100);
        chunk.push({ key: `SYM${s}`, value: `{"ts":"2021-03-10 16:21:32.000","symbol":"SYM${s}","price":${p[s].toFixed(2)}}` });
      }
      await producer.send(input, chunk);
    }
    await producer.close();
    p = [];
    const produceSeconds = (performance.now() - produceStart) / 1000;
    console.log(`produced ${messages.toLocaleString('en-US')} prices to ${input} in ${produceSeconds.toFixed(1)} s (${rate(messages, produceSeconds)} msgs/s)`);

    let read = 0;
    const readSeconds = await (async () => {
      const start = performance.now();
      for await (const batch of log.readRange({ topic: input })) read += batch.length;
      return (performance.now() - start) / 1000;
    })();
    const readRate = read / readSeconds;
    rows.push(`| plain read of the topic (log.readRange, no decoding) | ${read.toLocaleString('en-US')} | ${readSeconds.toFixed(2)} | ${rate(read, readSeconds)} | | 1.00x |`);

    for (const [mode, extra, output] of [[`exactly once, --commit-interval ${interval}`, ['--commit-interval', interval], topics[2]], ['--at-least-once', ['--at-least-once'], topics[4]]] as const) {
      const cli = measureCli([
        'indicators', '--input', input, '--output', output, '--group', `bench-cli-${output}`, '--until-end', '--json',
        '--brokers', brokers.join(','), '--database-url', url.toString(), ...extra,
      ]);
      const cliReport = JSON.parse(cli.stdout);
      rows.push(`| \`tickflow indicators --until-end\`, ${mode} (child process, start-up included) | ${cliReport.read.toLocaleString('en-US')} | ${cli.seconds.toFixed(2)} | ${rate(cliReport.read, cli.seconds)} | ${Math.round(cli.peakRssMiB)} | ${(cliReport.read / cli.seconds / readRate).toFixed(2)}x |`);
    }

    for (const [mode, exactlyOnce, output] of [[`exactly once, ${interval}`, true, topics[3]], ['at least once', false, topics[5]]] as const) {
      const db = await openDatabase({ url: url.toString() });
      const start = performance.now();
      const report = await runIndicators({
        log, db, logger: pino({ level: 'warn' }), signal: new AbortController().signal, window: 100, stopAtEnd: true,
        inputTopic: input, outputTopic: output, deadLetterTopic: topics[1], group: `bench-inproc-${output}`,
        exactlyOnce, ...(exactlyOnce ? { commitIntervalMs: parseInterval(interval) } : {}),
      });
      const seconds = (performance.now() - start) / 1000;
      await db.close();
      rows.push(`| runIndicators in-process (pipeline only), ${mode} | ${report.read.toLocaleString('en-US')} | ${seconds.toFixed(2)} | ${rate(report.read, seconds)} | | ${(report.read / seconds / readRate).toFixed(2)}x |`);
    }
    console.log(['', ...rows, ''].join('\n'));
  } finally {
    await log.deleteTopics(topics).catch(() => undefined);
    await log.close();
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin.end();
  }
}

/** "1s", "500ms", "2m" → ms (the bench's own flag; the CLI validates its own). */
function parseInterval(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(text);
  if (!m) throw new Error(`--commit-interval: expected e.g. 500ms, 1s, 2m; got ${text}`);
  return Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 's' ? 1000 : 60_000);
}

function measureCli(args: string[]): { seconds: number; peakRssMiB: number; stdout: string } {
  const dir = mkdtempSync(join(tmpdir(), 'tickflow-bench-'));
  const out = join(dir, 'time');
  try {
    const result = spawnSync('/usr/bin/time', ['-f', '%e %M', '-o', out, process.execPath, BIN, ...args], {
      cwd: ROOT,
      env: { ...process.env, LOG_LEVEL: 'warn' },
      encoding: 'utf8',
      maxBuffer: 64 << 20,
    });
    if (result.status !== 0) throw new Error(`tickflow ${args.join(' ')} failed (${result.status}): ${result.stderr.slice(-2000)}`);
    const [seconds, rssKb] = readFileSync(out, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
    return { seconds, peakRssMiB: rssKb / 1024, stdout: result.stdout };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
