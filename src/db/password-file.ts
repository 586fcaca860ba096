/**
 * A PostgreSQL password that is not in the URL, found as libpq finds it, so no password
 * need ever be on a command line: PGPASSWORD (which pg reads itself), else the password
 * file named by PGPASSFILE (default ~/.pgpass). Its lines are
 * `hostname:port:database:username:password`; `*` matches anything, `\` escapes `:` and
 * `\`, `#` starts a comment. Like libpq, a file that group or others can read is ignored.
 */
import { readFileSync, statSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { join } from 'node:path';

export interface PasswordTarget {
  host: string;
  port: string;
  database: string;
  user: string;
}

/** The target a `postgres://` URL names, with libpq's defaults for what it leaves out. */
export function targetOf(url: URL, env: NodeJS.ProcessEnv): PasswordTarget {
  const user = decodeURIComponent(url.username) || env.PGUSER || userInfo().username;
  const host = url.searchParams.get('host') ?? (url.hostname.replace(/^\[|\]$/g, '') || 'localhost');
  return {
    host,
    port: url.port || '5432',
    database: decodeURIComponent(url.pathname.replace(/^\//, '')) || user,
    user,
  };
}

export function passwordFileOf(env: NodeJS.ProcessEnv): string {
  return env.PGPASSFILE || join(homedir(), '.pgpass');
}

/** The password of the first matching line, or undefined (no file, no match, or a file others can read). */
export function passwordFromFile(file: string, target: PasswordTarget, warn: (message: string) => void = () => {}): string | undefined {
  let text: string;
  try {
    if ((statSync(file).mode & 0o077) !== 0) {
      warn(`password file ${file} is readable by group or others; ignored (chmod 0600 it)`);
      return undefined;
    }
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const wanted = [target.host, target.port, target.database, target.user];
  for (const line of text.split(/\r?\n/)) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const fields = splitFields(line);
    if (fields.length < 5) continue;
    if (wanted.every((value, i) => fields[i] === '*' || fields[i] === value)) return fields.slice(4).join(':');
  }
  return undefined;
}

function splitFields(line: string): string[] {
  const fields: string[] = [];
  let current = '';
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '\\' && i + 1 < line.length) current += line[++i];
    else if (c === ':' && fields.length < 4) {
      fields.push(current);
      current = '';
    } else current += c;
  }
  fields.push(current);
  return fields;
}
