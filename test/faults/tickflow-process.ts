/**
 * tickflow commands as the fault suite runs them: `node src/cli/main.ts …` spawned directly
 * (so a kill reaches tickflow itself, never a wrapper), logs at info kept in memory and in
 * test-artifacts/faults/, Prometheus metrics on a port of their own.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import type { WriteStream } from 'node:fs';
import path from 'node:path';
import { freePort } from '../helpers/postgres-server.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const MAIN = path.join(ROOT, 'src/cli/main.ts');
export const ARTIFACTS = path.join(ROOT, 'test-artifacts', 'faults');

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class TickflowProcess {
  readonly name: string;
  readonly args: readonly string[];
  readonly child: ChildProcess;
  readonly metricsPort: number;
  readonly startedAt = Date.now();
  readonly exited: Promise<Exit>;
  exit: Exit | null = null;
  stdout = '';
  stderr = '';
  #log: WriteStream;

  constructor(name: string, args: readonly string[], metricsPort: number, env: NodeJS.ProcessEnv) {
    this.name = name;
    this.args = args;
    this.metricsPort = metricsPort;
    mkdirSync(ARTIFACTS, { recursive: true });
    this.#log = createWriteStream(path.join(ARTIFACTS, `${name}.log`));
    this.#log.write(`$ tickflow ${args.join(' ')}\n`);
    this.child = spawn(process.execPath, [MAIN, ...args, '--metrics-port', String(metricsPort)], {
      cwd: ROOT,
      env: { ...process.env, LOG_LEVEL: 'info', DATABASE_URL: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      this.stdout += d;
      this.#log.write(d);
    });
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      this.stderr += d;
      this.#log.write(d);
    });
    this.exited = new Promise((resolve) => {
      this.child.on('close', (code, signal) => {
        this.exit = { code, signal };
        this.#log.end(`\n[exit code ${code} signal ${signal}]\n`);
        resolve(this.exit);
      });
    });
  }

  get running(): boolean {
    return this.exit === null;
  }

  /** Ctrl-C: the command finishes in-flight work, commits and exits. */
  async stop(timeoutMs = 60_000): Promise<Exit> {
    if (this.running) this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The last lines of its logs, for assertion messages. */
  tail(lines = 25): string {
    return `${this.name} (tickflow ${this.args.slice(0, 2).join(' ')} …), last lines:\n${`${this.stderr}${this.stdout}`.trimEnd().split('\n').slice(-lines).join('\n')}`;
  }

  /** Sum of the samples of these metrics whose labels include `labels`. */
  async metric(names: readonly string[], labels: Record<string, string> = {}): Promise<number> {
    const response = await fetch(`http://127.0.0.1:${this.metricsPort}/metrics`, { signal: AbortSignal.timeout(2000) });
    const text = await response.text();
    let sum = 0;
    for (const line of text.split('\n')) {
      const m = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line);
      if (!m || !names.includes(m[1])) continue;
      const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
      if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
    }
    return sum;
  }
}

/** Starts `tickflow ARGS` with metrics on a free port. */
export async function startTickflow(name: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<TickflowProcess> {
  return new TickflowProcess(name, args, await freePort(), env);
}

/** Runs a short tickflow command to its end (setup steps: topics, data). */
export function tickflow(args: readonly string[], options: { input?: string; timeoutMs?: number } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { cwd: ROOT, env: { ...process.env, LOG_LEVEL: 'warn', DATABASE_URL: '' }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 300_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
  });
}
