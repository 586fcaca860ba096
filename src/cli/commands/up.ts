import { Writable } from 'node:stream';
import { defineCommand } from '../command.ts';
import type { CommandContext } from '../command.ts';
import { int, str } from '../flags.ts';

interface Config {
  count: number;
  rate: number;
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
  summary: 'Run everything in one process: prices batch + stats, then generator, aggregator, indicators, API and dashboard',
  description: [
    'Produces the prices batch and prints its statistics, then keeps the stocks generator, the',
    '30-second aggregator, the indicators and the API with its live dashboard running until',
    'Ctrl-C, printing where to look. On the embedded defaults (in-process log, PGlite under',
    '--data-dir) unless --brokers / --database-url (or KAFKA_BROKERS / DATABASE_URL) are given.',
  ].join('\n'),
  flags: {
    count: { type: 'string', short: 'n', value: 'N', default: '5000', description: 'Price messages in the batch' },
    rate: { type: 'string', value: 'N', default: '10', description: 'Stock messages per second' },
    host: { type: 'string', value: 'HOST', default: '127.0.0.1', description: 'Interface of the API and dashboard' },
    port: { type: 'string', value: 'N', env: 'PORT', default: '8080', description: 'Port of the API and dashboard (0 = any free port)' },
  },
  examples: ['tickflow up', 'npm start', 'tickflow up --port 0 --data-dir /tmp/tickflow', 'tickflow up --brokers 127.0.0.1:9092 --database-url postgres://postgres@127.0.0.1:5432/tickflow'],
  configure: (values) => ({
    count: int(values, 'count', 5000, { min: 1, max: 100_000_000 }),
    rate: int(values, 'rate', 10, { min: 1, max: 100_000 }),
    host: str(values, 'host') ?? '127.0.0.1',
    port: int(values, 'port', 8080, { min: 0, max: 65_535 }),
  }),
  async run(context) {
    const { config, shared, out, signal } = context;
    const { runCli } = await import('../main.ts');
    const common = [
      ...(shared.brokers ? ['--brokers', shared.brokers.join(',')] : []),
      ...(shared.databaseUrl ? ['--database-url', shared.databaseUrl] : []),
      '--data-dir', shared.dataDir,
      '--log-level', ['trace', 'debug'].includes(shared.logLevel) ? shared.logLevel : 'warn',
    ];
    const sub = (args: string[], stream: NodeJS.WritableStream = out) =>
      runCli([...args, ...common], { out: stream, err: process.stderr, env: process.env, handleSignals: false, signal });

    out.write(`tickflow up — log: ${shared.brokers ? `Kafka ${shared.brokers.join(',')}` : 'embedded (in-process)'}, ` +
      `database: ${shared.databaseUrl ? 'PostgreSQL' : `embedded PGlite in ${shared.dataDir}/pglite`}\n\n`);

    if ((await sub(['produce', 'prices', '--count', String(config.count)])) !== 0) return 1;
    out.write('\n');
    if ((await sub(['stats'])) !== 0) return 1;
    out.write('\n');
    if (signal.aborted) return 0;

    const quiet = new Writable({ write: (_chunk, _encoding, done) => done() });
    const services: Promise<number>[] = [
      sub(['generate', 'stocks', '--rate', String(config.rate)], quiet),
      sub(['aggregate', 'stocks'], quiet),
      sub(['indicators'], quiet),
    ];
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
    const api = sub(['api', '--host', config.host, '--port', String(config.port), '--json'], apiOut);
    services.push(api);
    // The API either listens (announce) or fails (its code ends the race).
    const url = await Promise.race([listening, api.then(() => null)]);
    if (url) announce(context, url);
    const codes = await Promise.all(services);
    return codes.every((code) => code === 0) ? 0 : 1;
  },
});

function announce({ out }: CommandContext<Config>, url: string): void {
  out.write(
    [
      'tickflow is running:',
      `  dashboard: ${url}/dashboard`,
      `  api:       ${url}/v1/get-prices`,
      `  docs:      ${url}/docs`,
      `  metrics:   ${url}/metrics`,
      'Press Ctrl-C to stop.',
      '',
    ].join('\n'),
  );
}
