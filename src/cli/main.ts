import { parseArgs } from 'node:util';
import { join } from 'node:path';
import pino from 'pino';
import type { Logger } from 'pino';
import { TickflowError, isTickflowError } from '../core/errors.ts';
import type { Log } from '../log/types.ts';
import type { Database } from '../db/types.ts';
import type { Command, CommandContext, FlagSpec, FlagValues } from './command.ts';
import { SHARED_FLAGS, resolveShared, withEnvironment } from './config.ts';
import type { SharedConfig } from './config.ts';
import { loadCommandFor, loadCommands } from './registry.ts';
import { commandHelp, overviewHelp } from './help.ts';

export interface CliIo {
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
  /** Installs SIGINT/SIGTERM handlers (off in tests and in commands run by another command). */
  handleSignals: boolean;
  /** Stops the command when aborted (a parent command's shutdown). */
  signal?: AbortSignal;
}

const defaultIo = (): CliIo => ({ out: process.stdout, err: process.stderr, env: process.env, handleSignals: true });

/** Runs one tickflow invocation and returns its exit code. */
export async function runCli(argv: readonly string[], io: CliIo = defaultIo()): Promise<number> {
  const named = await loadCommandFor(argv);
  const commands = named ? [named] : await loadCommands();
  const { command, rest } = selectCommand(commands, argv);
  if (!command) {
    const asked = argv.filter((a) => !a.startsWith('-'));
    if (asked.length > 0 && !argv.includes('--help') && !argv.includes('-h')) {
      io.err.write(`tickflow: unknown command "${asked.join(' ')}" (see tickflow --help)\n`);
      return 2;
    }
    if (argv.includes('--version')) {
      io.out.write(`${process.env.npm_package_version ?? '0.1.0'}\n`);
      return 0;
    }
    io.out.write(overviewHelp(commands));
    return asked.length > 0 || argv.length === 0 || argv.includes('--help') || argv.includes('-h') ? 0 : 2;
  }

  const specs: Record<string, FlagSpec> = { ...SHARED_FLAGS, ...command.flags };
  let shared: SharedConfig;
  let config: object;
  let values: Record<string, string | boolean | string[] | undefined>;
  try {
    const parsed = parseArgs({
      args: [...rest],
      options: Object.fromEntries(
        Object.entries(specs).map(([name, spec]) => [
          name,
          { type: spec.type, ...(spec.short ? { short: spec.short } : {}), ...(spec.multiple ? { multiple: true } : {}) },
        ]),
      ),
      allowPositionals: true,
      strict: true,
    });
    if (parsed.values.help) {
      io.out.write(commandHelp(command));
      return 0;
    }
    values = withEnvironment(parsed.values as FlagValues, specs, io.env);
    if (!command.positionals && parsed.positionals.length > 0) {
      throw new TickflowError('BAD_FLAG', `unexpected argument "${parsed.positionals[0]}"`);
    }
    if (command.positionals?.required && parsed.positionals.length === 0) {
      throw new TickflowError('BAD_FLAG', `missing ${command.positionals.name}`);
    }
    shared = resolveShared(values, io.env);
    config = Object.freeze(command.configure(values, parsed.positionals) as object);
  } catch (error) {
    const message = isTickflowError(error) ? error.message : cleanParseError(error);
    io.err.write(`tickflow ${command.name.join(' ')}: ${message} (see --help)\n`);
    return 2;
  }

  const logger = pino({ level: shared.logLevel, base: { cmd: command.name.join('-') } }, pino.destination({ dest: 2, sync: true }));
  const { configureRetries } = await import('../observability/retry.ts');
  configureRetries({ retryForMs: shared.retryForMs, logger });
  const controller = new AbortController();
  if (io.signal) {
    if (io.signal.aborted) controller.abort();
    else io.signal.addEventListener('abort', () => controller.abort(), { once: true });
  }
  const cleanup: Array<() => Promise<void>> = [];
  let log: Log | null = null;
  let db: Database | null = null;

  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      io.err.write(`tickflow: ${signal} again, exiting now\n`);
      process.exit(130);
    }
    logger.info({ signal }, 'shutting down: finishing in-flight work (press Ctrl-C again to force)');
    controller.abort();
  };
  if (io.handleSignals) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }

  const context: CommandContext<unknown> = {
    config,
    shared,
    logger,
    signal: controller.signal,
    out: io.out,
    openLog: async () => {
      if (!log) {
        log = await openLogFor(shared);
        cleanup.push(async () => log!.close());
      }
      return log;
    },
    openDatabase: async () => {
      if (!db) {
        db = await openDatabaseFor(shared, logger);
        cleanup.push(async () => db!.close());
      }
      return db;
    },
  };

  try {
    if (shared.metrics) {
      const { serveMetrics } = await import('../http/metrics-server.ts');
      const server = await serveMetrics(shared.metrics);
      cleanup.push(() => server.close());
      logger.info({ url: server.url }, 'serving metrics');
    }
    const code = await (command as Command<unknown>).run(context);
    return code ?? 0;
  } catch (error) {
    if (isTickflowError(error)) {
      logger.debug({ err: error }, 'command failed');
      io.err.write(`tickflow ${command.name.join(' ')}: ${error.message}\n`);
      return error.exitCode;
    }
    logger.error({ err: error }, 'unexpected failure');
    io.err.write(`tickflow ${command.name.join(' ')}: unexpected failure: ${(error as Error)?.message ?? error}\n`);
    return 70;
  } finally {
    for (const close of cleanup.reverse()) await close().catch((e) => logger.warn({ err: e }, 'close failed'));
    if (io.handleSignals) {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  }
}

const embeddedDatabases = new Map<string, { db: Promise<Database>; users: number }>();

/**
 * PostgreSQL when configured; else the embedded PGlite of the data dir, shared by every
 * command running in this process (PGlite takes one connection: `tickflow up` runs several
 * services on it) and closed when the last one is done.
 */
export async function openDatabaseFor(shared: SharedConfig, logger: Logger): Promise<Database> {
  const { openDatabase } = await import('../db/open.ts');
  if (shared.databaseUrl) return openDatabase({ url: shared.databaseUrl, logger });
  const dataDir = join(shared.dataDir, 'pglite');
  let entry = embeddedDatabases.get(dataDir);
  if (!entry) {
    entry = { db: openDatabase({ dataDir, logger }), users: 0 };
    embeddedDatabases.set(dataDir, entry);
    entry.db.catch(() => embeddedDatabases.delete(dataDir));
  }
  entry.users++;
  const db = await entry.db;
  let closed = false;
  const owner = entry;
  return new Proxy(db, {
    get(object, property) {
      if (property === 'close') {
        return async () => {
          if (closed) return;
          closed = true;
          if (--owner.users === 0) {
            embeddedDatabases.delete(dataDir);
            await object.close();
          }
        };
      }
      const value = Reflect.get(object, property, object);
      return typeof value === 'function' ? value.bind(object) : value;
    },
  });
}

let embeddedLog: Log | null = null;

/** Kafka when brokers are configured, else the process-wide embedded log. */
export async function openLogFor(shared: SharedConfig): Promise<Log> {
  if (shared.brokers) {
    const { KafkaLog } = await import('../log/kafka.ts');
    return new KafkaLog({
      brokers: shared.brokers,
      tls: shared.kafkaTls ? (shared.kafkaTls.ca ? { ca: shared.kafkaTls.ca } : true) : undefined,
      sasl: shared.kafkaSasl ?? undefined,
      isolationLevel: shared.isolationLevel,
    });
  }
  if (!embeddedLog) {
    const { MemoryLog } = await import('../log/memory.ts');
    embeddedLog = new MemoryLog();
  }
  // The embedded log outlives any one command in the process: closing it is a no-op.
  const target = embeddedLog;
  return new Proxy(target, {
    get(object, property) {
      if (property === 'close') return async () => {};
      const value = Reflect.get(object, property, object);
      return typeof value === 'function' ? value.bind(object) : value;
    },
  });
}

function selectCommand(commands: readonly Command<unknown>[], argv: readonly string[]) {
  const words: string[] = [];
  for (const arg of argv) {
    if (arg.startsWith('-')) break;
    words.push(arg);
  }
  let best: Command<unknown> | undefined;
  for (const command of commands) {
    const n = command.name.length;
    if (n <= words.length && command.name.every((w, i) => words[i] === w) && (!best || n > best.name.length)) best = command;
  }
  if (!best) return { command: undefined, rest: argv };
  return { command: best, rest: argv.slice(best.name.length) };
}

function cleanParseError(error: unknown): string {
  const message = (error as Error)?.message ?? String(error);
  // node:util's messages are multi-line and mention "parseArgs"; keep the first clause.
  const first = message.split('\n')[0].replace(/\. To specify a positional argument.*$/, '');
  const ambiguous = /^Option '(?:-\w, )?(--[\w-]+)(?: <value>)?' argument is ambiguous/.exec(first);
  if (ambiguous) return `${ambiguous[1]}: the value looks like a flag; write ${ambiguous[1]}=VALUE`;
  return first.replace(/^Unknown option '(.+?)'.*$/, 'unknown flag $1');
}

if (import.meta.main) {
  runCli(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
