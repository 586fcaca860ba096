import { createServer } from 'node:net';
import { Writable } from 'node:stream';
import { TickflowError } from '../../core/errors.ts';
import type { runCli as RunCli } from '../main.ts';
import { Supervisor } from '../supervisor.ts';
import type { Part } from '../supervisor.ts';
import { defineCommand } from '../command.ts';
import type { CommandContext } from '../command.ts';
import { int, str } from '../flags.ts';

interface Config {
  count: number;
  rate: number;
  frameRate: number;
  host: string;
  port: number;
}

/**
 * The whole system in one process: the same commands the compose services run, started
 * in-process on one embedded log and one embedded database (or the configured Kafka and
 * PostgreSQL). First the prices batch and its statistics, then the long-running services
 * until Ctrl-C.
 */
export const command = defineCommand<Config>({
  name: ['up'],
  servesMetrics: true,
  summary: 'Run everything in one process: prices batch + stats, then generators, aggregator, indicators, unique users, API and dashboard',
  description: [
    'Produces the prices batch and prints its statistics, then keeps the stocks generator, the',
    '30-second aggregator, the indicators, a live source of user-tracker frames (--frame-rate a',
    'second into user-tracker), unique-users keeping every minute as a sketch in the database',
    '(what the dashboard\'s unique-users panels and GET /v1/unique-users show), and the API with its',
    'live dashboard running until Ctrl-C, printing where to look. On the embedded defaults (the',
    'embedded log and PGlite, both kept under --data-dir, so a restart goes on where the last run',
    'stopped) unless --brokers / --database-url (or KAFKA_BROKERS / DATABASE_URL) are given. A part',
    'that fails to start stops the others and `up` exits with one line; one that fails later is',
    'restarted with backoff.',
  ].join('\n'),
  flags: {
    count: { type: 'string', short: 'n', value: 'N', default: '5000', description: 'Price messages in the batch' },
    rate: { type: 'string', value: 'N', default: '10', description: 'Stock messages per second' },
    'frame-rate': { type: 'string', value: 'N', default: '20', description: 'User-tracker frames per second (0: no frames; unique-users still runs)' },
    host: { type: 'string', value: 'HOST', default: '127.0.0.1', description: 'Interface of the API and dashboard' },
    port: { type: 'string', value: 'N', env: 'PORT', default: '8080', description: 'Port of the API and dashboard (0 = any free port)' },
  },
  examples: ['tickflow up', 'npm start', 'tickflow up --port 0 --data-dir /tmp/tickflow', 'tickflow up --brokers 127.0.0.1:9092 --database-url postgres://postgres@127.0.0.1:5432/tickflow'],
  configure: (values) => ({
    count: int(values, 'count', 5000, { min: 1, max: 100_000_000 }),
    rate: int(values, 'rate', 10, { min: 1, max: 100_000 }),
    frameRate: int(values, 'frame-rate', 20, { min: 0, max: 100_000 }),
    host: str(values, 'host') ?? '127.0.0.1',
    port: int(values, 'port', 8080, { min: 0, max: 65_535 }),
  }),
  async run(context) {
    const { config, shared, logger } = context;
    const { runCli, openDatabaseFor, openLogFor } = await import('../main.ts');
    // Claim what this run owns before starting anything: the embedded log and database
    // (held, and locked, for the whole run, so a second `up` fails at once naming this
    // one), the API's port free, and PostgreSQL reachable and migrated.
    // Opening them logs at info (migrations applied): at the default level, keep start-up to warnings.
    const quiet = shared.logLevel === 'info' ? logger.child({}, { level: 'warn' }) : logger;
    const held: Array<{ close(): Promise<void> }> = [];
    try {
      if (!shared.brokers) held.push(await openLogFor(shared, quiet));
      await checkPortFree(config.host, config.port);
      held.push(await openDatabaseFor(shared, quiet));
      return await runParts(context, runCli);
    } finally {
      for (const resource of held.reverse()) await resource.close().catch((error) => logger.warn({ err: error }, 'close failed'));
    }
  },
});

/** The prices batch and its statistics, then the services under supervision until Ctrl-C. */
async function runParts(context: CommandContext<Config>, runCli: typeof RunCli): Promise<number> {
  const { config, shared, out, signal, logger } = context;
  const common = [
    ...(shared.brokers ? ['--brokers', shared.brokers.join(',')] : []),
    ...(shared.databaseUrl ? ['--database-url', shared.databaseUrl] : []),
    '--data-dir', shared.dataDir,
    '--log-level', ['trace', 'debug'].includes(shared.logLevel) ? shared.logLevel : 'warn',
  ];
  // Stops every part: Ctrl-C, or one part failing to start.
  const stop = new AbortController();
  if (signal.aborted) stop.abort();
  else signal.addEventListener('abort', () => stop.abort(), { once: true });
  const sub = (args: string[], stream: NodeJS.WritableStream = out, err: NodeJS.WritableStream = process.stderr) =>
    runCli([...args, ...common], { out: stream, err, env: process.env, handleSignals: false, signal: stop.signal });

  out.write(`tickflow up — log: ${shared.brokers ? `Kafka ${shared.brokers.join(',')}` : `embedded in ${shared.dataDir}/log`}, ` +
    `database: ${shared.databaseUrl ? 'PostgreSQL' : `embedded PGlite in ${shared.dataDir}/pglite`}\n\n`);

  if ((await sub(['produce', 'prices', '--count', String(config.count)])) !== 0) return 1;
  out.write('\n');
  if ((await sub(['stats'])) !== 0) return 1;
  out.write('\n');
  if (signal.aborted) return 0;

  let announced: (url: string) => void = () => {};
  const listening = new Promise<string>((resolve) => (announced = resolve));
  let buffered = '';
  const apiOut = new Writable({
    write(chunk, _encoding, done) {
      buffered += String(chunk);
      const line = buffered.split('\n').find((l) => l.startsWith('{'));
      if (line) announced((JSON.parse(line) as { url: string }).url);
      done();
    },
  });
  const discard = new Writable({ write: (_chunk, _encoding, done) => done() });
  const parts: Part[] = [
    { name: 'generate stocks', args: ['generate', 'stocks', '--rate', String(config.rate)], out: discard },
    { name: 'aggregate stocks', args: ['aggregate', 'stocks'], out: discard },
    { name: 'indicators', args: ['indicators'], out: discard },
    // Small frames (~0.7 KB): the live source is for the dashboard, not a benchmark.
    ...(config.frameRate > 0 ? [{ name: 'generate users', args: ['generate', 'users', '--frames', '--rate', String(config.frameRate), '--frame-bytes', '256'], out: discard }] : []),
    { name: 'unique-users', args: ['unique-users', '--sketches'], out: discard },
    { name: 'api', args: ['api', '--host', config.host, '--port', String(config.port), '--json'], out: apiOut },
  ];
  const supervisor = new Supervisor(stop, logger, (part, err) => sub(part.args, part.out, err));
  const running = parts.map((part) => supervisor.run(part));
  // Started once the API listens; a part that stops before that failed to start.
  const url = await Promise.race([listening, Promise.all(running).then(() => null)]);
  if (url) {
    supervisor.started = true;
    announce(context, url);
  }
  await Promise.all(running);
  if (supervisor.failure) {
    process.stderr.write(`tickflow up: ${supervisor.failure.message}\n`);
    return supervisor.failure.code || 1;
  }
  return 0;
}

/** The API's port, checked before anything starts (0 = any free port: nothing to check). */
async function checkPortFree(host: string, port: number): Promise<void> {
  if (port === 0) return;
  await new Promise<void>((resolve, reject) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) => {
      reject(error.code === 'EADDRINUSE'
        ? new TickflowError('BAD_CONFIG', `port ${port} on ${host} is in use: stop what listens there, or give --port another port (0 = any free one)`, { host, port })
        : new TickflowError('BAD_CONFIG', `cannot listen on ${host}:${port}: ${error.message}`, { host, port }));
    });
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve()));
  });
}

function announce({ out }: CommandContext<Config>, url: string): void {
  out.write(
    [
      'tickflow is running:',
      `  dashboard: ${url}/dashboard`,
      `  api:       ${url}/v1/get-prices`,
      `  users:     ${url}/v1/unique-users?from=ISO&to=ISO&granularity=minute (distinct users of the live frames)`,
      `  docs:      ${url}/docs`,
      `  metrics:   ${url}/metrics`,
      'Press Ctrl-C to stop.',
      '',
    ].join('\n'),
  );
}
