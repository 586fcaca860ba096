/**
 * An exclusive claim on a PGlite data dir. PGlite has no lock of its own, and two
 * processes writing one data dir corrupt it — easy to do by starting two tickflow
 * commands on the embedded default. The lock is a `<dataDir>.lock` file holding the
 * owner's pid (beside the dir, not in it: initdb wants an empty dir).
 */
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { TickflowError } from '../core/errors.ts';

/** Locks held by this process; a lock file with our own pid but not in here is stale (pid reuse, e.g. pid 1 in containers). */
const held = new Set<string>();

export function lockDataDir(dataDir: string): () => void {
  const path = resolve(dataDir) + '.lock';
  if (held.has(path)) {
    throw new TickflowError('DB_ERROR', `embedded database ${dataDir} is already open in this process: share the Database instead of opening it twice`, { dataDir });
  }
  if (!tryCreate(path)) {
    const owner = Number(readFileSync(path, 'utf8').trim());
    if (owner !== process.pid && isAlive(owner)) {
      throw new TickflowError('DB_ERROR', `embedded database ${dataDir} is in use by process ${owner}: stop it, or give this command another data dir or a DATABASE_URL`, { dataDir, pid: owner });
    }
    unlinkSync(path); // stale: its owner died without closing
    if (!tryCreate(path)) throw new TickflowError('DB_ERROR', `embedded database ${dataDir} was locked by another process just now`, { dataDir });
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

function tryCreate(path: string): boolean {
  try {
    writeFileSync(path, String(process.pid), { flag: 'wx' });
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
