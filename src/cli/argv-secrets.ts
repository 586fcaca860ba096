/**
 * A password on the command line is readable by every local user (`ps`, /proc/PID/cmdline).
 * Database URLs given as flags are checked once per process: one carrying a password gets
 * a one-line warning that says what to do instead. URLs from the environment are not
 * warned about, nor are flags a command passes to the commands it runs in-process.
 */
import type { FlagValues } from './command.ts';

const warned = new Set<string>();

/** Flags (any name) whose value is a postgres:// URL with a password and which the process's own argv shows. */
export function flagsWithPasswords(values: FlagValues, argv: readonly string[]): string[] {
  const found: string[] = [];
  for (const [flag, value] of Object.entries(values)) {
    if (typeof value !== 'string' || !/^postgres(ql)?:\/\//i.test(value) || !hasPassword(value)) continue;
    if (argv.some((arg) => arg === value || arg.endsWith(`=${value}`))) found.push(flag);
  }
  return found;
}

function hasPassword(url: string): boolean {
  try {
    const parsed = new URL(url);
    return parsed.password !== '' || parsed.searchParams.has('password');
  } catch {
    return /:[^/@:]+@/.test(url);
  }
}

/** The warnings not yet written in this process, one line each. */
export function argvPasswordWarnings(values: FlagValues, argv: readonly string[] = process.argv): string[] {
  return flagsWithPasswords(values, argv).filter((flag) => !warned.has(flag)).map((flag) => {
    warned.add(flag);
    return `tickflow: warning: --${flag} has a password in it, which any local user can read in the process list; ` +
      'give the URL without the password and set PGPASSWORD, or put it in a password file (PGPASSFILE, default ~/.pgpass, mode 0600)\n';
  });
}
