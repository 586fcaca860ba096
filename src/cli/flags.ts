import { TickflowError } from '../core/errors.ts';
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

/** Durations like 500ms, 30s, 5m, 2h (a bare number means seconds). Returns milliseconds. */
/** A duration such as 500ms, 30s, 5m, 1h or 2d (seconds without a unit) in ms, or null. */
export function durationMs(text: string): number | null {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  return match ? Number(match[1]) * UNITS[match[2] ?? 's'] : null;
}

export function duration(values: FlagValues, flag: string, fallbackMs: number, range: { minMs?: number } = {}): number {
  const raw = str(values, flag);
  if (raw === undefined) return fallbackMs;
  const ms = durationMs(raw);
  if (ms === null) throw bad(flag, `expects a duration such as 500ms, 30s, 5m or 1h, got "${raw}"`);
  if (range.minMs !== undefined && ms < range.minMs) throw bad(flag, `must be at least ${range.minMs}ms, got ${raw}`);
  return ms;
}

export { bad as badFlag };

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
