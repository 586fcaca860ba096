import type { Logger } from 'pino';
import type { Log } from '../log/types.ts';
import type { Database } from '../db/types.ts';
import type { SharedConfig } from './config.ts';

/** One flag of a command: parsed by node:util parseArgs, documented by `--help`. */
export interface FlagSpec {
  type: 'string' | 'boolean';
  description: string;
  short?: string;
  /** Shown in help as the value placeholder, e.g. N, URL, LIST. */
  value?: string;
  default?: string | boolean;
  /** Environment variable that supplies the value when the flag is absent. */
  env?: string;
  multiple?: boolean;
  /**
   * A deprecated name of another flag of the same command: its value is read as that flag's,
   * a one-line warning names the current flag, and help never shows it (docs/cli.md).
   */
  aliasOf?: string;
}

/** A deprecated alias of `flag`: accepted with a warning, hidden from help. */
export function alias(flag: string): FlagSpec {
  return { type: 'string', description: `Deprecated alias of --${flag}`, aliasOf: flag };
}

export type FlagValues = Record<string, string | boolean | string[] | undefined>;

/** What a running command gets: validated config, logger, lazily opened log and database. */
export interface CommandContext<Config> {
  readonly config: Readonly<Config>;
  readonly shared: Readonly<SharedConfig>;
  readonly logger: Logger;
  /** Aborted on SIGINT/SIGTERM: finish in-flight work, commit, return. */
  readonly signal: AbortSignal;
  /** Results go here (stdout); logs go to stderr. */
  readonly out: NodeJS.WritableStream;
  openLog(): Promise<Log>;
  openDatabase(): Promise<Database>;
}

export interface Command<Config = unknown> {
  /** Words that select the command, e.g. ['produce', 'prices']. */
  readonly name: readonly string[];
  readonly summary: string;
  readonly description?: string;
  readonly flags: Readonly<Record<string, FlagSpec>>;
  readonly positionals?: { name: string; description: string; required?: boolean };
  readonly examples: readonly string[];
  /** Serves /metrics (the API, `up`): metrics are kept from the start (observability/metrics.ts). */
  readonly servesMetrics?: boolean;
  /** Validates flags once at start (throw BAD_FLAG naming the flag) and returns frozen config. */
  configure(values: FlagValues, positionals: readonly string[]): Config;
  /** Returns the process exit code (0 by default). */
  run(context: CommandContext<Config>): Promise<number | void>;
}

export function defineCommand<Config>(command: Command<Config>): Command<Config> {
  return command;
}
