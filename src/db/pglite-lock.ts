/**
 * An exclusive claim on a directory of embedded state (the PGlite data dir, the embedded
 * log). Neither PGlite nor the log has a lock of its own, and two processes writing one
 * dir corrupt it — easy to do by starting two tickflow commands on the embedded default.
 * The lock is a `<dir>.lock` file beside the dir (not in it: initdb wants an empty dir)
 * holding the owner's pid and command words (never its flags: they may hold secrets).
 */
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { TickflowError } from '../core/errors.ts';
import type { ErrorCode } from '../core/errors.ts';

export interface LockOptions {
  /** What the dir holds, for messages (default "embedded database"). */
  what?: string;
  /** The error code of a refusal (default DB_ERROR). */
  code?: ErrorCode;
  /** What to do instead, after "stop it, or " (default: another data dir or a DATABASE_URL). */
  instead?: string;
}

/** Locks held by this process; a lock file with our own pid but not in here is stale (pid reuse, e.g. pid 1 in containers). */
const held = new Set<string>();

export function lockDataDir(dataDir: string, options: LockOptions = {}): () => void {
  const what = options.what ?? 'embedded database';
  const code = options.code ?? 'DB_ERROR';
  const path = resolve(dataDir) + '.lock';
  if (held.has(path)) {
    throw new TickflowError(code, `${what} ${dataDir} is already open in this process: share it instead of opening it twice`, { dataDir });
  }
  if (!tryCreate(path)) {
    const [pidLine = '', command = ''] = readFileSync(path, 'utf8').split('\n');
    const owner = Number(pidLine.trim());
    if (owner !== process.pid && isAlive(owner)) {
      const by = `process ${owner}${command.trim() ? ` (${command.trim()})` : ''}`;
      throw new TickflowError(code, `${what} ${dataDir} is in use by ${by}: stop it, or ${options.instead ?? 'give this command another --data-dir or a DATABASE_URL'}`, { dataDir, pid: owner, command: command.trim() });
    }
    unlinkSync(path); // stale: its owner died without closing
    if (!tryCreate(path)) throw new TickflowError(code, `${what} ${dataDir} was locked by another process just now`, { dataDir });
  }
  held.add(path);
  return () => {
    held.delete(path);
    try {
      unlinkSync(path);
    } catch {
      // already gone: nothing to release
    }
  };
}

/** `tickflow up`, `tickflow produce prices`: the program and its command words, no flags. */
export function ownerCommand(argv: readonly string[] = process.argv): string {
  const [, script = '', ...args] = argv;
  const words: string[] = [];
  for (const arg of args) {
    if (arg.startsWith('-')) break;
    words.push(arg);
  }
  const program = /tickflow(\.js)?$|cli[\\/]main\.ts$/.test(script) ? 'tickflow' : basename(script) || 'node';
  return [program, ...words].join(' ');
}

function tryCreate(path: string): boolean {
  try {
    writeFileSync(path, `${process.pid}\n${ownerCommand()}\n`, { flag: 'wx' });
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
