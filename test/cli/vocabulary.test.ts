import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { createServer } from 'node:net';
import type { Server } from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCommands } from '../../src/cli/registry.ts';
import { cleanUserJson } from '../../src/core/user-record.ts';
import { BIN, tickflow } from '../helpers/cli.ts';
import { KAFKA_BROKERS } from '../helpers/env.ts';
import { readTopicIndependently } from '../helpers/independent-reader.ts';
import { transactionsSettled } from '../helpers/transactions.ts';
import { KafkaLog } from '../../src/log/kafka.ts';
import { privateSchema } from '../indicators/fixtures.ts';
import type { CliResult } from '../helpers/cli.ts';

/** The embedded log and database, in a data dir of the test's own. */
const dataDir = mkdtempSync(join(tmpdir(), 'tickflow-cli-vocabulary-'));
const embedded = { env: { KAFKA_BROKERS: '', DATABASE_URL: '', TICKFLOW_DATA_DIR: dataDir } };
const SYSTEM_NODE = '/usr/bin/node';

after(() => rmSync(dataDir, { recursive: true, force: true }));

/** Flag → value placeholder, from the "Flags:" section of a command's help. */
function flagsOf(help: string): Map<string, string> {
  const section = help.split('\nFlags:\n')[1]?.split('\n\nShared flags:')[0] ?? '';
  const flags = new Map<string, string>();
  for (const line of section.split('\n')) {
    const match = /^ {2}(?:-\w, | {4})--([a-z-]+)(?: ([A-Z=]+))?/.exec(line);
    if (match) flags.set(match[1], match[2] ?? '');
  }
  return flags;
}

/** A port nothing listens on: bound once, then closed. */
async function closedPort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

function run(command: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv } = {}) {
  const child = spawn(command, args, { env: { ...process.env, LOG_LEVEL: 'warn', ...options.env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const done = new Promise<CliResult & { signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { child, done, stdout: () => stdout };
}

describe('one flag vocabulary in every command\'s --help', () => {
  const helps = new Map<string, Map<string, string>>();
  const texts = new Map<string, string>();

  before(async () => {
    for (const command of await loadCommands()) {
      const name = command.name.join(' ');
      const result = await tickflow([...command.name, '--help']);
      assert.equal(result.code, 0, `${name} --help: ${result.stderr}`);
      texts.set(name, result.stdout);
      helps.set(name, flagsOf(result.stdout));
    }
  });

  it('shows every command, and no deprecated name anywhere in any help', () => {
    assert.ok(helps.size >= 15, `only ${helps.size} commands`);
    for (const [name, text] of texts) {
      for (const old of ['--topic ', '--output-topic', '--dlq-topic', '--stop-at-end', '--idle-flush', '--start-time', '--replication ', 'Deprecated']) {
        assert.ok(!text.includes(old), `${name} --help mentions ${old.trim()}`);
      }
    }
    assert.ok(!helps.get('indicators')!.has('window'), 'indicators --help shows --window');
  });

  it('gives one concept one name: topics read and written, dead letters, bounded runs, idling', () => {
    const readers = ['aggregate stocks', 'archive', 'clean-users', 'indicators', 'stats', 'unique-users'];
    const writers = ['clean-users', 'generate stocks', 'indicators', 'produce prices', 'replay', 'unique-users'];
    for (const name of readers) assert.ok(helps.get(name)!.has('input'), `${name} reads without --input`);
    for (const name of writers) assert.ok(helps.get(name)!.has('output'), `${name} writes without --output`);
    for (const name of ['aggregate stocks', 'archive', 'clean-users', 'indicators', 'unique-users']) {
      assert.ok(helps.get(name)!.has('dead-letter-topic'), `${name} has no --dead-letter-topic`);
      assert.match(texts.get(name)!, /default: <input>-dlq/, `${name} does not document the <input>-dlq default`);
    }
    for (const name of ['archive', 'clean-users', 'indicators', 'unique-users']) assert.ok(helps.get(name)!.has('until-end'), `${name} has no --until-end`);
    for (const name of ['aggregate stocks', 'clean-users', 'unique-users']) assert.ok(helps.get(name)!.has('idle-timeout'), `${name} has no --idle-timeout`);
    assert.ok(helps.get('indicators')!.has('points'));
  });

  it('gives one flag one kind of value everywhere; times are TIME (only --start), lengths of time DURATION', () => {
    const allowed: Record<string, string[]> = { input: ['TOPIC', 'LIST'], output: ['TOPIC', 'FILE'] };
    const kinds = new Map<string, Set<string>>();
    for (const flags of helps.values()) {
      for (const [flag, value] of flags) kinds.set(flag, (kinds.get(flag) ?? new Set()).add(value));
    }
    for (const [flag, values] of kinds) {
      if (allowed[flag]) assert.ok([...values].every((v) => allowed[flag].includes(v)), `--${flag} takes ${[...values].join(' and ')}`);
      else assert.equal(values.size, 1, `--${flag} takes ${[...values].join(' and ')} in different commands`);
      if (values.has('TIME')) assert.equal(flag, 'start', `--${flag} takes a TIME`);
      for (const unitless of ['S', 'MS', 'TS', 'SECONDS']) assert.ok(!values.has(unitless), `--${flag} takes a bare ${unitless}`);
    }
    for (const flag of ['window', 'allowed-lateness', 'idle-timeout', 'max-time-skew', 'interval', 'duration', 'disorder', 'late-min', 'late-max']) {
      assert.deepEqual([...kinds.get(flag)!], ['DURATION'], `--${flag}`);
    }
  });
});

describe('deprecated names still work, with one line of warning', () => {
  it('--topic of produce prices writes what --output writes', async () => {
    const current = await tickflow(['produce', 'prices', '-n', '50', '--seed', '3', '--output', '-'], embedded);
    const old = await tickflow(['produce', 'prices', '-n', '50', '--seed', '3', '--topic', '-'], embedded);
    assert.equal(current.code, 0, current.stderr);
    assert.equal(old.code, 0, old.stderr);
    assert.equal(current.stdout.split('\n').length, 51);
    assert.equal(old.stdout, current.stdout);
    assert.match(old.stderr, /^tickflow produce prices: --topic is deprecated: use --output\n/);
    assert.doesNotMatch(current.stderr, /deprecated/);
  });

  it('--start-time and a bare epoch keep their old meaning (epoch ms) and say what to write', async () => {
    const current = await tickflow(['generate', 'stocks', '-n', '5', '--seed', '1', '--output', '-', '--start', '1700000000000ms'], embedded);
    const inSeconds = await tickflow(['generate', 'stocks', '-n', '5', '--seed', '1', '--output', '-', '--start', '1700000000s'], embedded);
    const old = await tickflow(['generate', 'stocks', '-n', '5', '--seed', '1', '--topic', '-', '--start-time', '1700000000000'], embedded);
    assert.equal(old.code, 0, old.stderr);
    assert.equal(JSON.parse(current.stdout.split('\n')[0]).ts, '2023-11-14T22:13:20.000Z');
    assert.equal(inSeconds.stdout, current.stdout);
    assert.equal(old.stdout, current.stdout);
    assert.deepEqual(old.stderr.split('\n').filter((l) => l.startsWith('tickflow')), [
      'tickflow generate stocks: --topic is deprecated: use --output',
      'tickflow generate stocks: --start-time is deprecated: use --start',
      'tickflow generate stocks: --start 1700000000000: an epoch time without a unit is deprecated; write 1700000000000ms',
    ]);
  });

  it('indicators: --topic, --output-topic, --dlq-topic, --window and --stop-at-end', async () => {
    const result = await tickflow(['indicators', '--topic', 'p', '--output-topic', 'v', '--dlq-topic', 'd', '--window', '5', '--stop-at-end', '--json'], embedded);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout), { read: 0, published: 0, deadLettered: 0 });
    // With --json, warnings are JSON objects too.
    const warnings = result.stderr.split('\n').filter((l) => l.startsWith('{"warning"')).map((l) => JSON.parse(l).warning);
    assert.deepEqual(warnings.map((w: { command: string; message: string }) => `${w.command}: ${w.message}`).sort(), [
      'indicators: --dlq-topic is deprecated: use --dead-letter-topic',
      'indicators: --output-topic is deprecated: use --output',
      'indicators: --stop-at-end is deprecated: use --until-end',
      'indicators: --topic is deprecated: use --input',
      'indicators: --window is deprecated: use --points',
    ]);
  });

  it('a deprecated name is judged by the rules of the current one, and both together are refused', async () => {
    const idle = await tickflow(['aggregate', 'stocks', '--idle-flush', '1ms'], embedded);
    assert.equal(idle.code, 2);
    assert.equal(idle.stderr, 'tickflow aggregate stocks: --idle-timeout: must be at least 100ms, got 1ms (see --help)\n');
    const both = await tickflow(['archive', '--input', 'a', '--topic', 'b'], embedded);
    assert.equal(both.code, 2);
    assert.equal(both.stderr, 'tickflow archive: --topic: is the deprecated alias of --input: give only --input (see --help)\n');
  });
});

describe('- for stdin and stdout', () => {
  it('clean-users --input - --output - conforms stdin to stdout, the reports on stderr', async () => {
    const generated = await tickflow(['generate', 'users', '-n', '300', '--seed', '11'], embedded);
    assert.equal(generated.code, 0, generated.stderr);
    const lines = generated.stdout.split('\n').filter((l) => l.trim() !== '');
    assert.equal(lines.length, 300);
    const expected = lines.map((l) => cleanUserJson(l)).flatMap((r) => (r.ok ? [`${JSON.stringify(r.user)}\n`] : []));
    assert.ok(expected.length > 200 && expected.length < 300, `${expected.length} clean of 300`);
    const result = await tickflow(['clean-users', '--input', '-', '--output', '-', '--json'], { ...embedded, input: generated.stdout });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, expected.join(''));
    const summary = result.stderr.split('\n').filter((l) => l.startsWith('{"summary"')).map((l) => JSON.parse(l).summary)[0];
    assert.equal(summary.read, 300);
    assert.equal(summary.clean, expected.length);
    assert.equal(summary.deadLettered, 300 - expected.length);
  });

  it('indicators --output - writes to stdout exactly what --output TOPIC writes to the topic (real Kafka)', async () => {
    const brokers = ['--brokers', KAFKA_BROKERS.join(',')];
    const input = `cli-stdout-prices-${process.pid}-${Date.now()}`;
    const schema = await privateSchema('cli_stdout');
    try {
      const produced = await tickflow(['produce', 'prices', '-n', '400', '--seed', '5', '--output', input, ...brokers]);
      assert.equal(produced.code, 0, produced.stderr);
      const common = ['indicators', '--input', input, '--until-end', '--database-url', schema.url, ...brokers];
      const toStdout = await tickflow([...common, '--output', '-', '--group', `${input}-a`]);
      assert.equal(toStdout.code, 0, toStdout.stderr);
      assert.match(toStdout.stderr, /read 400, published 400 to -, dead-lettered 0/);
      const toTopic = await tickflow([...common, '--output', `${input}-out`, '--group', `${input}-b`]);
      assert.equal(toTopic.code, 0, toTopic.stderr);
      assert.match(toTopic.stdout + toTopic.stderr, /read 400, published 400 to /);
      // Exactly once: the run's commit is decided when it exits; the markers that make the
      // records readable at read_committed follow.
      const log = new KafkaLog({ brokers: KAFKA_BROKERS });
      try {
        assert.ok(await transactionsSettled(log, `${input}-out`), 'no transaction left open on the output');
      } finally {
        await log.close();
      }
      const written = (await readTopicIndependently(KAFKA_BROKERS, `${input}-out`)).map((m) => m.value);
      const printed = toStdout.stdout.split('\n').filter(Boolean);
      assert.equal(printed.length, 400);
      assert.deepEqual([...printed].sort(), [...written].sort());
    } finally {
      await schema.drop();
    }
  });

  it('a command that cannot read stdin says why in one line', async () => {
    const result = await tickflow(['aggregate', 'stocks', '--input', '-'], embedded);
    assert.equal(result.code, 2);
    assert.equal(result.stderr, 'tickflow aggregate stocks: --input: "-" (stdin) is not available here: the aggregator keeps its position per partition in PostgreSQL; replay the file into a topic first (tickflow replay FILE --output stocks) (see --help)\n');
  });
});

describe('errors name their cause in one line', () => {
  let busy: Server;
  let busyPort: number;
  before(async () => {
    busy = createServer().listen(0, '127.0.0.1');
    await once(busy, 'listening');
    busyPort = (busy.address() as { port: number }).port;
  });
  after(() => busy.close());

  it('Kafka unreachable: the brokers tried and the socket error, exit 3', async () => {
    const [a, b] = [await closedPort(), await closedPort()];
    const result = await tickflow(['topics', '--brokers', `127.0.0.1:${a},127.0.0.1:${b}`, '--retry-for', '0s'], { env: { LOG_LEVEL: 'error' } });
    assert.equal(result.code, 3);
    assert.equal(result.stderr,
      `tickflow topics: Kafka unavailable for 0s (--retry-for 0s): list topics: Connection to 127.0.0.1:${a} failed. (connect ECONNREFUSED 127.0.0.1:${a}); brokers tried: 127.0.0.1:${a}, 127.0.0.1:${b}\n`);
    const json = await tickflow(['topics', '--brokers', `127.0.0.1:${a}`, '--retry-for', '0s', '--json'], { env: { LOG_LEVEL: 'error' } });
    assert.equal(json.code, 3);
    assert.deepEqual(JSON.parse(json.stderr), { error: { command: 'topics', code: 'LOG_LOST', exitCode: 3,
      message: `Kafka unavailable for 0s (--retry-for 0s): list topics: Connection to 127.0.0.1:${a} failed. (connect ECONNREFUSED 127.0.0.1:${a}); brokers tried: 127.0.0.1:${a}` } });
  });

  const badPorts: Array<[string[], string]> = [
    [['topics', '--brokers', '127.0.0.1:70000'], 'tickflow topics: --brokers: port 70000 of "127.0.0.1:70000" is not a TCP port (1..65535) (see --help)\n'],
    [['topics', '--brokers', 'kafka:0'], 'tickflow topics: --brokers: port 0 of "kafka:0" is not a TCP port (1..65535) (see --help)\n'],
    [['api', '--port', '70000'], 'tickflow api: --port: must be at most 65535, got 70000 (see --help)\n'],
    [['topics', '--metrics-port', '70000'], 'tickflow topics: --metrics-port: must be at most 65535, got 70000 (see --help)\n'],
    [['up', '--port', '65536'], 'tickflow up: --port: must be at most 65535, got 65536 (see --help)\n'],
  ];
  for (const [args, stderr] of badPorts) {
    it(`validates ports: ${args.join(' ')}`, async () => {
      const result = await tickflow(args, embedded);
      assert.equal(result.code, 2);
      assert.equal(result.stderr, stderr);
    });
  }

  it('an unreadable file, a directory given as a file, a missing file: one line, exit 1, no stack', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tickflow-cli-files-'));
    try {
      // root reads any file it owns, but not a write-only file of /proc.
      let unreadable = join(dir, 'unreadable.jsonl');
      if (process.getuid?.() === 0) unreadable = '/proc/sys/vm/compact_memory';
      else {
        writeFileSync(unreadable, '{}\n');
        chmodSync(unreadable, 0o000);
      }
      const cases: Array<[string[], string]> = [
        [['replay', unreadable], `tickflow replay: cannot open ${unreadable}: permission denied (EACCES)\n`],
        [['replay', dir], `tickflow replay: cannot read ${dir}: is a directory (EISDIR)\n`],
        [['replay', join(dir, 'missing.jsonl')], `tickflow replay: cannot read ${join(dir, 'missing.jsonl')}: no such file or directory (ENOENT)\n`],
        [['generate', 'users', '-n', '3', '-o', dir], `tickflow generate users: cannot open ${dir}: is a directory (EISDIR)\n`],
        [['generate', 'users', '-n', '3', '-o', join(dir, 'no', 'such', 'dir.jsonl')], `tickflow generate users: cannot open ${join(dir, 'no', 'such', 'dir.jsonl')}: no such file or directory (ENOENT)\n`],
      ];
      for (const [args, stderr] of cases) {
        const result = await tickflow(args, embedded);
        assert.equal(result.code, 1, `${args.join(' ')}: ${result.stderr}`);
        assert.equal(result.stderr, stderr);
      }
      const json = await tickflow(['replay', dir, '--json'], embedded);
      assert.equal(json.code, 1);
      assert.deepEqual(JSON.parse(json.stderr), { error: { command: 'replay', code: 'BAD_INPUT', message: `cannot read ${dir}: is a directory (EISDIR)`, exitCode: 1 } });
      const debug = await tickflow(['generate', 'users', '-n', '3', '-o', dir, '--log-level', 'debug'], embedded);
      assert.equal(debug.code, 1);
      assert.match(debug.stderr, /"stack":"Error: EISDIR/, 'the stack is logged at debug level');
      assert.ok(debug.stderr.endsWith(`tickflow generate users: cannot open ${dir}: is a directory (EISDIR)\n`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a port in use: one line naming it, exit 1', async () => {
    const api = await tickflow(['api', '--port', String(busyPort)], embedded);
    assert.equal(api.code, 1);
    assert.equal(api.stderr, `tickflow api: cannot listen on 127.0.0.1:${busyPort}: the port is in use by another process (EADDRINUSE)\n`);
    const metrics = await tickflow(['topics', '--metrics-port', String(busyPort), '--json'], embedded);
    assert.equal(metrics.code, 1);
    assert.deepEqual(JSON.parse(metrics.stderr), { error: { command: 'topics', code: 'ADDRESS_IN_USE', exitCode: 1,
      message: `cannot listen on 127.0.0.1:${busyPort}: the port is in use by another process (EADDRINUSE)` } });
  });

  it('-n -5 is judged as a value; with --json the error is one JSON object', async () => {
    const text = await tickflow(['produce', 'prices', '-n', '-5'], embedded);
    assert.equal(text.code, 2);
    assert.equal(text.stderr, 'tickflow produce prices: --count: must be at least 0, got -5 (see --help)\n');
    const json = await tickflow(['produce', 'prices', '-n', '-5', '--json'], embedded);
    assert.equal(json.code, 2);
    assert.equal(json.stdout, '');
    assert.deepEqual(JSON.parse(json.stderr), { error: { command: 'produce prices', code: 'BAD_FLAG', message: '--count: must be at least 0, got -5', exitCode: 2 } });
    const unknown = await tickflow(['frobnicate', '--json'], embedded);
    assert.equal(unknown.code, 2);
    assert.deepEqual(JSON.parse(unknown.stderr), { error: { command: '', code: 'BAD_FLAG', message: 'unknown command "frobnicate" (see tickflow --help)', exitCode: 2 } });
  });
});

describe('bin/tickflow.js on the system Node (older than 24)', () => {
  it('runs on the pinned runtime: output and exit code pass through', async () => {
    const version = await run(SYSTEM_NODE, ['-p', 'process.versions.node']).done;
    assert.ok(Number(version.stdout.split('.')[0]) < 24, `${SYSTEM_NODE} is ${version.stdout.trim()}`);
    const ok = await run(SYSTEM_NODE, [BIN, 'produce', 'prices', '-n', '7', '--seed', '1', '--output', '-'], embedded).done;
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout.split('\n').length, 8);
    const bad = await run(SYSTEM_NODE, [BIN, 'topics', '--partitions', 'many'], embedded).done;
    assert.equal(bad.code, 2);
    assert.equal(bad.stderr, 'tickflow topics: --partitions: expects an integer, got "many" (see --help)\n');
  });

  it('passes SIGTERM on to the command, which shuts down cleanly', async () => {
    const api = run(SYSTEM_NODE, [BIN, 'api', '--port', '0', '--json'], embedded);
    while (!api.stdout().includes('"url"')) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(api.child.exitCode, null, 'api exited before listening');
    }
    api.child.kill('SIGTERM');
    const result = await api.done;
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.signal, null);
  });

  it('without the pinned runtime, says in one line what to do, exit 1', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tickflow-cli-bin-'));
    try {
      mkdirSync(join(dir, 'bin'));
      copyFileSync(BIN, join(dir, 'bin', 'tickflow.js'));
      writeFileSync(join(dir, 'package.json'), '{"type":"module"}\n');
      const result = await run(SYSTEM_NODE, [join(dir, 'bin', 'tickflow.js'), '--help']).done;
      assert.equal(result.code, 1);
      assert.equal(result.stdout, '');
      assert.match(result.stderr, /^tickflow: needs Node\.js 24 or newer, but \/usr\/bin\/node is v\d+\.\d+\.\d+; run `npm install` in the tickflow directory \(it fetches the pinned Node 24\) or put Node 24 first on PATH\n$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
