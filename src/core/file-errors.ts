/**
 * One-line text for what the file system refused: the path, the reason in words and the
 * system code ("cannot open data.jsonl: permission denied (EACCES)").
 */

const REASONS: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EISDIR: 'is a directory',
  ENOTDIR: 'a part of the path is not a directory',
  EEXIST: 'already exists',
  ENOSPC: 'no space left on the device',
  EROFS: 'read-only file system',
  EMFILE: 'too many open files',
  ENAMETOOLONG: 'file name too long',
  ELOOP: 'too many symbolic links',
  EFBIG: 'file too large',
  EDQUOT: 'disk quota exceeded',
};

const VERBS: Record<string, string> = { open: 'open', read: 'read', write: 'write', mkdir: 'create directory', scandir: 'list', stat: 'read', lstat: 'read', rename: 'rename', unlink: 'remove' };

export interface SystemError {
  code?: unknown;
  syscall?: unknown;
  path?: unknown;
  address?: unknown;
  port?: unknown;
  message?: unknown;
  cause?: unknown;
}

/** The error, or the first of its causes, that a system call raised with this code set. */
export function systemError(error: unknown, codes: (code: string) => boolean): SystemError | null {
  const seen = new Set<unknown>();
  for (let e = error as SystemError | undefined; e && typeof e === 'object' && !seen.has(e); e = e.cause as SystemError | undefined) {
    seen.add(e);
    if (typeof e.code === 'string' && codes(e.code)) return e;
  }
  return null;
}

/** "cannot open data.jsonl: permission denied (EACCES)", or null when it is not a file error. */
export function fileErrorText(error: unknown): string | null {
  const e = systemError(error, (code) => code in REASONS);
  if (!e) return null;
  const code = e.code as string;
  const verb = VERBS[String(e.syscall)] ?? String(e.syscall ?? 'use');
  return typeof e.path === 'string' ? `cannot ${verb} ${e.path}: ${REASONS[code]} (${code})` : `${REASONS[code]} (${code})`;
}
