/**
 * Helpers over `postgres://` URLs. Whatever we log or put in an error message goes
 * through `redactUrl` first: a URL is the one place a password hides in our config.
 */
const SECRET_PARAMS = ['password', 'sslpassword'];

export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    for (const name of SECRET_PARAMS) {
      if (parsed.searchParams.has(name)) parsed.searchParams.set(name, '***');
    }
    return parsed.toString();
  } catch {
    // Not a parseable URL (a typo, a libpq keyword string): still never show a secret.
    return url
      .replace(/(^|[\s/])([^\s/:@]*):[^\s/@]*@/g, '$1$2:***@')
      .replace(/((?:ssl)?password=)[^&\s]*/gi, '$1***');
  }
}

/** The same server and credentials, another database (e.g. `postgres` to run CREATE DATABASE). */
export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = '/' + encodeURIComponent(database);
  return parsed.toString();
}

/** The database a URL names (pg's default: the user name, else `postgres`). */
export function databaseOf(url: string): string {
  const parsed = new URL(url);
  const name = decodeURIComponent(parsed.pathname.replace(/^\//, ''));
  return name || decodeURIComponent(parsed.username) || 'postgres';
}
