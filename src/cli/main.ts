import { parseArgs } from 'node:util';
import { join } from 'node:path';
import pino from 'pino';
import type { Logger } from 'pino';
import { TickflowError, isTickflowError } from '../core/errors.ts';
import type { Log } from '../log/types.ts';
import type { Database } from '../db/types.ts';
import type { Command, CommandContext, FlagSpec, FlagValues } from './command.ts';
import { argvPasswordWarnings } from './argv-secrets.ts';
import { SHARED_FLAGS, resolveShared, withEnvironment } from './config.ts';
import type { SharedConfig } from './config.ts';
import { loadCommandFor, loadCommands } from './registry.ts';
import { commandHelp, overviewHelp } from './help.ts';
import { describeFailure, failureLine } from './errors.ts';
import { deprecated, takeDeprecations } from './flags.ts';

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
      const message = `unknown command "${asked.join(' ')}" (see tickflow --help)`;
      io.err.write(argv.includes('--json') ? failureLine('', { code: 'BAD_FLAG', message, exitCode: 2 }, true) : `tickflow: ${message}\n`);
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
  const name = command.name.join(' ');
  let json = rest.includes('--json');
  const warn = (message: string) => io.err.write(json ? `${JSON.stringify({ warning: { command: name, message } })}\n` : `tickflow ${name}: ${message}\n`);
  let shared: SharedConfig;
  let config: object;
  let values: Record<string, string | boolean | string[] | undefined>;
  try {
    takeDeprecations();
    const parsed = parseArgs({
      args: joinNegativeValues(rest, specs),
      options: Object.fromEntries(
        Object.entries(specs).map(([flag, spec]) => [
          flag,
          { type: spec.aliasOf ? specs[spec.aliasOf].type : spec.type, ...(spec.short ? { short: spec.short } : {}), ...(spec.multiple ? { multiple: true } : {}) },
        ]),
      ),
      allowPositionals: true,
      strict: true,
    });
    for (const warning of argvPasswordWarnings(parsed.values as FlagValues)) io.err.write(warning);
    if (parsed.values.help) {
      io.out.write(commandHelp(command));
      return 0;
    }
    values = withEnvironment(resolveAliases(parsed.values as FlagValues, specs), specs, io.env);
    if (!command.positionals && parsed.positionals.length > 0) {
      throw new TickflowError('BAD_FLAG', `unexpected argument "${parsed.positionals[0]}"`);
    }
    if (command.positionals?.required && parsed.positionals.length === 0) {
      throw new TickflowError('BAD_FLAG', `missing ${command.positionals.name}`);
    }
    shared = resolveShared(values, io.env);
    json = shared.json;
    config = Object.freeze(command.configure(values, parsed.positionals) as object);
  } catch (error) {
    const message = isTickflowError(error) ? error.message : cleanParseError(error);
    const code = isTickflowError(error) ? error.code : 'BAD_FLAG';
    io.err.write(json ? failureLine(name, { code, message, exitCode: 2 }, true) : `tickflow ${name}: ${message} (see --help)\n`);
    return 2;
  }
  for (const notice of takeDeprecations()) warn(notice);

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
        log = await openLogFor(shared, logger);
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
    if (command.servesMetrics) (await import('../observability/metrics.ts')).enableMetrics();
    if (shared.metrics) {
      const { serveMetrics } = await import('../http/metrics-server.ts');
      const server = await serveMetrics(shared.metrics);
      cleanup.push(() => server.close());
      logger.info({ url: server.url }, 'serving metrics');
    }
    const code = await (command as Command<unknown>).run(context);
    return code ?? 0;
  } catch (error) {
    logger.debug({ err: error }, 'command failed');
    const failure = describeFailure(error, shared.brokers);
    io.err.write(failureLine(name, failure, shared.json));
    return failure.exitCode;
  } finally {
    for (const close of cleanup.reverse()) await close().catch((e) => logger.warn({ err: e }, 'close failed'));
    if (io.handleSignals) {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  }
}

interface SharedEntry<T> {
  value: Promise<T>;
  users: number;
  closing?: Promise<void>;
}

/**
 * One instance per key for every command running in this process (`tickflow up` runs
 * several on one embedded log and one PGlite), closed when the last of them closes it.
 */
async function shareInProcess<T extends { close(): Promise<void> }>(registry: Map<string, SharedEntry<T>>, key: string, open: () => Promise<T>): Promise<T> {
  for (let entry = registry.get(key); entry?.closing; entry = registry.get(key)) {
    await entry.closing.catch(() => {});
    if (registry.get(key) === entry) registry.delete(key);
  }
  let entry = registry.get(key);
  if (!entry) {
    const created: SharedEntry<T> = { value: open(), users: 0 };
    registry.set(key, created);
    created.value.catch(() => registry.get(key) === created && registry.delete(key));
    entry = created;
  }
  entry.users++;
  const owner = entry;
  let value: T;
  try {
    value = await owner.value;
  } catch (error) {
    owner.users--;
    throw error;
  }
  let closed = false;
  return new Proxy(value, {
    get(object, property) {
      if (property === 'close') {
        return async () => {
          if (closed) return;
          closed = true;
          if (--owner.users > 0) return;
          owner.closing = object.close();
          try {
            await owner.closing;
          } finally {
            if (registry.get(key) === owner) registry.delete(key);
          }
        };
      }
      const member = Reflect.get(object, property, object);
      return typeof member === 'function' ? member.bind(object) : member;
    },
  });
}

const embeddedDatabases = new Map<string, SharedEntry<Database>>();

/** PostgreSQL when configured; else the embedded PGlite of the data dir, shared in the process. */
export async function openDatabaseFor(shared: SharedConfig, logger: Logger): Promise<Database> {
  const { openDatabase } = await import('../db/open.ts');
  if (shared.databaseUrl) return openDatabase({ url: shared.databaseUrl, logger });
  const dataDir = join(shared.dataDir, 'pglite');
  return shareInProcess(embeddedDatabases, dataDir, () => openDatabase({ dataDir, logger }));
}

const embeddedLogs = new Map<string, SharedEntry<Log>>();

/**
 * Kafka when brokers are configured; else the embedded log persisted under
 * `<data-dir>/log`, shared by every command in this process and owned by this process
 * until the last of them closes it.
 */
export async function openLogFor(shared: SharedConfig, logger?: Logger): Promise<Log> {
  if (shared.brokers) {
    const { KafkaLog } = await import('../log/kafka.ts');
    return new KafkaLog({
      brokers: shared.brokers,
      tls: shared.kafkaTls ? (shared.kafkaTls.ca ? { ca: shared.kafkaTls.ca } : true) : undefined,
      sasl: shared.kafkaSasl ?? undefined,
      isolationLevel: shared.isolationLevel,
    });
  }
  const dir = join(shared.dataDir, 'log');
  return shareInProcess(embeddedLogs, dir, async () => {
    const { DiskLog } = await import('../log/disk.ts');
    return new DiskLog(dir, { logger });
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

/**
 * Deprecated names read as the flags they stand for, each with a one-line notice; giving
 * both is refused.
 */
function resolveAliases(values: FlagValues, specs: Record<string, FlagSpec>): FlagValues {
  const result: FlagValues = { ...values };
  for (const [flag, spec] of Object.entries(specs)) {
    if (!spec.aliasOf || result[flag] === undefined) continue;
    if (result[spec.aliasOf] !== undefined) {
      throw new TickflowError('BAD_FLAG', `--${flag}: is the deprecated alias of --${spec.aliasOf}: give only --${spec.aliasOf}`, { flag });
    }
    result[spec.aliasOf] = result[flag];
    delete result[flag];
    deprecated(`--${flag} is deprecated: use --${spec.aliasOf}`);
  }
  return result;
}

/**
 * `-n -5` and `--z -1`: a flag that takes a value followed by a negative number gets that
 * number as its value (written `--count=-5`), so the flag's own rule judges it rather than
 * the parser calling it ambiguous.
 */
function joinNegativeValues(args: readonly string[], specs: Record<string, FlagSpec>): string[] {
  const byShort = new Map(Object.entries(specs).filter(([, s]) => s.short).map(([flag, s]) => [s.short!, flag]));
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--') {
      out.push(...args.slice(i));
      break;
    }
    const flag = arg.startsWith('--') ? arg.slice(2) : /^-\w$/.test(arg) ? byShort.get(arg.slice(1)) : undefined;
    const spec = flag === undefined ? undefined : specs[flag];
    const type = spec?.aliasOf ? specs[spec.aliasOf]?.type : spec?.type;
    const next = args[i + 1];
    if (type === 'string' && next !== undefined && /^-(\d|\.\d)/.test(next)) {
      out.push(`--${flag}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
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
