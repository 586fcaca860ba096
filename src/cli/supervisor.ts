/**
 * `tickflow up` as one supervised whole (docs/operations.md): its parts are commands run
 * in this process; a part that stops before the whole has started stops the others, one
 * that stops later is restarted with backoff and listed among the dashboard's problems.
 */
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { reportPartDown, reportPartUp } from '../observability/supervision.ts';

export interface Part {
  name: string;
  args: string[];
  out: NodeJS.WritableStream;
}

export interface SupervisorLogger {
  warn(details: object, message: string): void;
}

const BACKOFF_FIRST_MS = 1_000;
const BACKOFF_MAX_MS = 30_000;
/** A part that ran this long before stopping starts its backoff over. */
const STEADY_MS = 60_000;
/** A restarted part still running after this long is up again (off the dashboard's problems). */
const BACK_UP_MS = 5_000;

/**
 * Runs the parts of `up` as one whole: a part that stops before the whole has started
 * stops the others (the failure is kept for one line); one that stops later is restarted
 * with exponential backoff and shown as a problem on the dashboard until it runs again.
 */
export class Supervisor {
  started = false;
  failure: { message: string; code: number } | null = null;
  readonly #stop: AbortController;
  readonly #logger: SupervisorLogger;
  readonly #start: (part: Part, err: NodeJS.WritableStream) => Promise<number>;

  constructor(stop: AbortController, logger: SupervisorLogger, start: (part: Part, err: NodeJS.WritableStream) => Promise<number>) {
    this.#stop = stop;
    this.#logger = logger;
    this.#start = start;
  }

  async run(part: Part): Promise<void> {
    let delay = BACKOFF_FIRST_MS;
    for (let restarts = 0; ; restarts++) {
      const errors = new LastLine();
      const began = Date.now();
      const backUp = restarts === 0 ? undefined : setTimeout(() => reportPartUp(part.name), BACK_UP_MS);
      const code = await this.#start(part, errors);
      clearTimeout(backUp);
      if (this.#stop.signal.aborted) return;
      const why = errors.last ?? `exited with code ${code}`;
      if (!this.started) {
        this.failure ??= { message: `${part.name} failed to start: ${why}`, code };
        this.#stop.abort();
        return;
      }
      if (Date.now() - began >= STEADY_MS) delay = BACKOFF_FIRST_MS;
      const message = `stopped (exit ${code}: ${why}); restart ${restarts + 1} in ${delay / 1000} s`;
      reportPartDown(part.name, message);
      this.#logger.warn({ part: part.name, code, error: why, restartInMs: delay }, `${part.name} ${message}`);
      try {
        await sleep(delay, undefined, { signal: this.#stop.signal });
      } catch {
        return; // stopping
      }
      delay = Math.min(delay * 2, BACKOFF_MAX_MS);
    }
  }
}

/** A part's error line as text: a `--json` line gives its message, a text line loses its `tickflow <command>: ` prefix. */
function plainMessage(line: string): string {
  if (line.startsWith('{')) {
    try {
      const parsed = JSON.parse(line) as { error?: { message?: unknown }; warning?: { message?: unknown } };
      const message = parsed.error?.message ?? parsed.warning?.message;
      if (typeof message === 'string') return message;
    } catch {
      // not JSON after all: keep the line
    }
  }
  return line.replace(/^tickflow [a-z -]+?: /, '');
}

/** Keeps the last line a part wrote as its error, without the `tickflow <command>: ` prefix. */
class LastLine extends Writable {
  last: string | null = null;
  override _write(chunk: unknown, _encoding: BufferEncoding, done: () => void): void {
    const lines = String(chunk).split('\n').map((l) => l.trim()).filter(Boolean);
    if (lines.length > 0) this.last = plainMessage(lines[lines.length - 1]);
    done();
  }
}
