import { TickflowError } from '../core/errors.ts';
import { parseInstant } from '../core/stock-ticks.ts';
import type { FlagValues } from './command.ts';

/**
 * Typed readers for flag values. Each throws BAD_FLAG with a one-line message that names
 * the flag, so config validation reads like a list of rules.
 */

const bad = (flag: string, message: string) => new TickflowError('BAD_FLAG', `--${flag}: ${message}`, { flag });

export function str(values: FlagValues, flag: string): string | undefined {
  const v = values[flag];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw bad(flag, 'expects a value');
  return v;
}

export function requiredStr(values: FlagValues, flag: string): string {
  const v = str(values, flag);
  if (v === undefined || v === '') throw bad(flag, 'is required');
  return v;
}

/** Where `withEnvironment` notes which flags the command line gave (the others came from the environment or their defaults). */
export const GIVEN_FLAGS = Symbol('tickflow.givenFlags');

/** The flag was on the command line (not filled in from its environment variable or default). */
export function given(values: FlagValues, flag: string): boolean {
  const set = (values as { [GIVEN_FLAGS]?: ReadonlySet<string> })[GIVEN_FLAGS];
  return set === undefined ? values[flag] !== undefined : set.has(flag);
}

export function bool(values: FlagValues, flag: string): boolean {
  return values[flag] === true;
}

export function int(values: FlagValues, flag: string, fallback: number, range: { min?: number; max?: number } = {}): number {
  const raw = str(values, flag);
  if (raw === undefined) return fallback;
  if (!/^-?\d+$/.test(raw.replaceAll('_', ''))) throw bad(flag, `expects an integer, got "${raw}"`);
  const n = Number(raw.replaceAll('_', ''));
  checkRange(flag, n, range);
  return n;
}

export function num(values: FlagValues, flag: string, fallback: number, range: { min?: number; max?: number; exclusiveMin?: number } = {}): number {
  const raw = str(values, flag);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n)) throw bad(flag, `expects a number, got "${raw}"`);
  if (range.exclusiveMin !== undefined && n <= range.exclusiveMin) throw bad(flag, `must be greater than ${range.exclusiveMin}, got ${raw}`);
  checkRange(flag, n, range);
  return n;
}

function checkRange(flag: string, n: number, { min, max }: { min?: number; max?: number }) {
  if (min !== undefined && n < min) throw bad(flag, `must be at least ${min}, got ${n}`);
  if (max !== undefined && n > max) throw bad(flag, `must be at most ${max}, got ${n}`);
}

export function list(values: FlagValues, flag: string, fallback: readonly string[]): string[] {
  const raw = str(values, flag);
  if (raw === undefined) return [...fallback];
  const items = raw.split(',').map((s) => s.trim()).filter(Boolean);
  if (items.length === 0) throw bad(flag, 'expects a comma-separated list');
  return items;
}

/** A flag given any number of times (`multiple: true`); absent means none. */
export function strings(values: FlagValues, flag: string): string[] {
  const v = values[flag];
  if (v === undefined) return [];
  if (Array.isArray(v)) return v;
  if (typeof v !== 'string') throw bad(flag, 'expects a value');
  return [v];
}

/** Repeated `--flag KEY=VALUE` pairs; a key given twice is refused. */
export function keyValues(values: FlagValues, flag: string): Record<string, string> {
  const result: Record<string, string> = {};
  for (const item of strings(values, flag)) {
    const match = /^([^=\s]+)=(.*)$/s.exec(item);
    if (!match) throw bad(flag, `expects KEY=VALUE, got "${item}"`);
    if (Object.hasOwn(result, match[1])) throw bad(flag, `sets ${match[1]} twice`);
    result[match[1]] = match[2];
  }
  return result;
}

export function oneOf<T extends string>(values: FlagValues, flag: string, choices: readonly T[], fallback: T): T {
  const raw = str(values, flag);
  if (raw === undefined) return fallback;
  if (!choices.includes(raw as T)) throw bad(flag, `expects one of ${choices.join(', ')}, got "${raw}"`);
  return raw as T;
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * Notices about deprecated spellings (an old flag name, a bare number where a unit is now
 * expected) and flags a mode ignores, collected while a command's flags are read; the CLI
 * prints each as one warning line.
 */
const notices: string[] = [];

export function deprecated(message: string): void {
  if (!notices.includes(message)) notices.push(message);
}

/** A notice about a flag the chosen mode ignores (printed like a deprecation: one warning line). */
export function ignored(flag: string, why: string): void {
  deprecated(`--${flag} is ignored: ${why}`);
}

export function takeDeprecations(): string[] {
  return notices.splice(0);
}

/** A duration such as 500ms, 30s, 5m, 1h or 2d (seconds without a unit) in ms, or null. */
export function durationMs(text: string): number | null {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  return match ? Number(match[1]) * UNITS[match[2] ?? 's'] : null;
}

/**
 * Durations like 500ms, 30s, 5m, 2h (a bare number means seconds). Returns milliseconds.
 * `bareUnit` keeps the old meaning of a bare number for a flag that used to take another
 * unit, with a deprecation notice.
 */
export function duration(values: FlagValues, flag: string, fallbackMs: number, range: { minMs?: number; bareUnit?: 'ms' } = {}): number {
  const raw = str(values, flag);
  if (raw === undefined) return fallbackMs;
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(raw.trim());
  if (!match) throw bad(flag, `expects a duration such as 500ms, 30s, 5m or 1h, got "${raw}"`);
  if (match[2] === undefined && range.bareUnit) deprecated(`--${flag} ${raw}: a number without a unit is deprecated here; write ${match[1]}${range.bareUnit}`);
  const ms = Number(match[1]) * UNITS[match[2] ?? range.bareUnit ?? 's'];
  if (range.minMs !== undefined && ms < range.minMs) throw bad(flag, `must be at least ${range.minMs}ms, got ${raw}`);
  return ms;
}

export { bad as badFlag };

/**
 * A point in time, the one syntax of every start/end flag: ISO 8601 (UTC unless it has an
 * offset), or epoch time with its unit, `1700000000s` or `1700000000000ms`. Returns epoch ms.
 * `bareUnit` keeps the old meaning of a bare number, with a deprecation notice.
 */
export function instant(values: FlagValues, flag: string, options: { bareUnit?: 's' | 'ms' } = {}): number | undefined {
  const raw = str(values, flag);
  if (raw === undefined) return undefined;
  const text = raw.trim();
  const epoch = /^(\d{1,16})(s|ms)?$/.exec(text);
  let ms: number | null;
  if (epoch) {
    const unit = epoch[2] ?? options.bareUnit;
    if (unit === undefined) throw bad(flag, `give the unit of an epoch time: ${epoch[1]}s or ${epoch[1]}ms`);
    if (epoch[2] === undefined) deprecated(`--${flag} ${raw}: an epoch time without a unit is deprecated; write ${epoch[1]}${unit}`);
    ms = parseInstant(Number(epoch[1]) * (unit === 's' ? 1000 : 1));
  } else {
    ms = parseInstant(text);
  }
  if (ms === null) throw bad(flag, `expects an ISO 8601 time (2024-05-01T12:00:00Z) or an epoch time with its unit (1714564800s, 1714564800000ms), got "${raw}"`);
  return ms;
}

/**
 * A topic flag (--input, --output) of a command that cannot use "-" (stdin, stdout) for
 * it: `why` says so and what to do instead.
 */
export function topicOnly(values: FlagValues, flag: 'input' | 'output', fallback: string, why: string): string {
  const name = str(values, flag) || fallback;
  if (name === '-') throw bad(flag, `"-" (${flag === 'input' ? 'stdin' : 'stdout'}) is not available here: ${why}`);
  return name;
}

/** A TCP port, 1..65535 (0, "any free port", only where `allowAny`). */
export function port(values: FlagValues, flag: string, fallback: number, options: { allowAny?: boolean } = {}): number {
  return int(values, flag, fallback, { min: options.allowAny ? 0 : 1, max: 65_535 });
}

const BYTE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1000, kb: 1000, kib: 1024, m: 1_000_000, mb: 1_000_000, mib: 1 << 20, g: 1e9, gb: 1e9, gib: 1 << 30 };

/** Sizes like 1048576, 512KiB, 1MiB, 5MB (KB/MB are powers of 1000, KiB/MiB of 1024). Returns bytes. */
export function bytes(values: FlagValues, flag: string, fallback: number, range: { min?: number; max?: number } = {}): number {
  const raw = str(values, flag);
  if (raw === undefined) return fallback;
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(raw.trim().replaceAll('_', ''));
  const unit = match ? BYTE_UNITS[match[2]!.toLowerCase()] : undefined;
  if (!match || unit === undefined) throw bad(flag, `expects a size such as 1048576, 512KiB or 1MiB, got "${raw}"`);
  const n = Math.floor(Number(match[1]) * unit);
  checkRange(flag, n, range);
  return n;
}
