import { isTickflowError } from '../core/errors.ts';
import { fileErrorText, systemError } from '../core/file-errors.ts';

export { fileErrorText };

/**
 * What a failed command prints: one line naming the cause, an exit code and a stable code
 * (the `code` of `--json` error output). Stacks go to the log at debug level only.
 */
export interface Failure {
  code: string;
  message: string;
  exitCode: number;
}

/** "cannot listen on 127.0.0.1:8080: the address is in use (EADDRINUSE)", or null. */
function listenErrorText(error: unknown): string | null {
  const e = systemError(error, (code) => code === 'EADDRINUSE' || code === 'EADDRNOTAVAIL' || code === 'EACCES');
  if (!e || (e.code === 'EACCES' && e.syscall !== 'listen')) return null;
  const where = `${String(e.address ?? '')}:${String(e.port ?? '')}`;
  const why = e.code === 'EADDRINUSE' ? 'the port is in use by another process' : e.code === 'EACCES' ? 'permission denied (ports below 1024 need privileges)' : 'no such address on this machine';
  return `cannot listen on ${where}: ${why} (${String(e.code)})`;
}

export function describeFailure(error: unknown, brokers: readonly string[] | null): Failure {
  if (isTickflowError(error)) {
    const kafka = ['LOG_LOST', 'LOG_UNAVAILABLE'].includes(error.code) && brokers;
    return { code: error.code, message: kafka ? `${error.message}; brokers tried: ${brokers.join(', ')}` : error.message, exitCode: error.exitCode };
  }
  const listen = listenErrorText(error);
  if (listen) return { code: 'ADDRESS_IN_USE', message: listen, exitCode: 1 };
  const file = fileErrorText(error);
  if (file) return { code: 'FILE_ERROR', message: file, exitCode: 1 };
  const message = String((error as Error)?.message ?? error).replace(/\s+/g, ' ').trim();
  return { code: 'INTERNAL', message: `unexpected failure: ${message} (--log-level debug shows the stack)`, exitCode: 70 };
}

/** The one line printed for a failure: text, or one JSON object with --json. */
export function failureLine(command: string, failure: Failure, json: boolean): string {
  if (json) return `${JSON.stringify({ error: { command, code: failure.code, message: failure.message, exitCode: failure.exitCode } })}\n`;
  return `tickflow${command ? ` ${command}` : ''}: ${failure.message}\n`;
}
