/**
 * Shared benchmark plumbing: run a command under /usr/bin/time for wall time and peak RSS,
 * print a table of rates with ratios against the other rows of the same run, and measure
 * HTTP latency at an evenly paced rate (open loop).
 */
import { spawnSync } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const KAFKA_LIB = join(ROOT, '.tickflow/kafka/lib/*');
export const NODE = process.execPath;
export const PYTHON = '/usr/bin/python3';

export interface Measured {
  seconds: number;
  peakRssMiB: number;
  stdout: string;
  stderr: string;
  /** Every run's wall time, when this is a median of several (roundRobin). */
  runs?: number[];
}

export function measure(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Measured {
  const dir = mkdtempSync(join(tmpdir(), 'tickflow-bench-'));
  const out = join(dir, 'time');
  try {
    const result = spawnSync('/usr/bin/time', ['-f', '%e %M', '-o', out, command, ...args], {
      cwd: ROOT,
      env: { ...process.env, LOG_LEVEL: 'warn', ...env },
      encoding: 'utf8',
      maxBuffer: 256 << 20,
    });
    if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${result.status}): ${result.stderr.slice(-2000)}`);
    const [seconds, rssKb] = readFileSync(out, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
    return { seconds, peakRssMiB: rssKb / 1024, stdout: result.stdout, stderr: result.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Runs each contender `repeat` times, round-robin — so a drift in machine load (the broker
 * shares these cores) hits every contender alike — and keeps each one's median wall time
 * (with its stdout, and the highest peak RSS seen). `check` sees every run.
 */
export function roundRobin(contenders: ReadonlyArray<() => Measured>, repeat: number, check: (m: Measured, contender: number) => void = () => undefined): Measured[] {
  const runs: Measured[][] = contenders.map(() => []);
  for (let round = 0; round < repeat; round++) {
    contenders.forEach((run, i) => {
      const measured = run();
      check(measured, i);
      runs[i]!.push(measured);
    });
  }
  return runs.map((list) => {
    const sorted = [...list].sort((a, b) => a.seconds - b.seconds);
    const median = sorted[Math.floor((sorted.length - 1) / 2)]!;
    return { ...median, peakRssMiB: Math.max(...list.map((m) => m.peakRssMiB)), runs: list.map((m) => m.seconds) };
  });
}

export interface Row {
  name: string;
  messages: number;
  bytes: number;
  seconds: number;
  peakRssMiB: number;
  note?: string;
  /** Every run's wall time when `seconds` is their median. */
  runs?: number[];
  /** Wall time of the same command over a handful of messages (start-up, connection, exit). */
  startup?: number;
}

/**
 * Prints rows with msgs/s, MB/s, peak RSS and each row's speed relative to `reference`. */
export function report(title: string, rows: Row[], reference: string): string {
  const ref = rows.find((r) => r.name === reference);
  // With start-up measured: its wall time, and the rate of the rest of the run.
  const startup = rows.some((r) => r.startup !== undefined);
  const steady = (r: Row) => (r.startup !== undefined && r.seconds > r.startup ? Math.round(r.messages / (r.seconds - r.startup)).toLocaleString('en-US') : 'n/a');
  const lines = [
    `### ${title}`,
    '',
    `| run | msgs/s | MB/s | wall s | peak RSS MiB |${startup ? ' start-up s | steady msgs/s |' : ''} vs ${reference} |`,
    `| --- | ---: | ---: | ---: | ---: |${startup ? ' ---: | ---: |' : ''} ---: |`,
    ...rows.map((r) => {
      const rate = r.messages / r.seconds;
      const ratio = ref ? (rate / (ref.messages / ref.seconds)).toFixed(2) : 'n/a';
      const extra = startup ? ` ${r.startup?.toFixed(2) ?? 'n/a'} | ${steady(r)} |` : '';
      return `| ${r.name}${r.note ? ` (${r.note})` : ''} | ${Math.round(rate).toLocaleString('en-US')} | ${(r.bytes / r.seconds / 1e6).toFixed(1)} | ${r.seconds.toFixed(2)}${r.runs && r.runs.length > 1 ? ` (${r.runs.map((x) => x.toFixed(2)).join(', ')})` : ''} | ${Math.round(r.peakRssMiB)} |${extra} ${ratio}x |`;
    }),
    '',
  ];
  const text = lines.join('\n');
  console.log(text);
  return text;
}

export function flag(args: string[], name: string, fallback: string): string {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : fallback;
}

export interface Outcome {
  rate: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  failed: number;
}

export function line(name: string, load: string, o: Outcome): string {
  const ms = (v: number) => (v < 10 ? v.toFixed(2) : v.toFixed(1));
  return `| ${name} | ${load} | ${Math.round(o.rate).toLocaleString('en-US')} | ${ms(o.p50)} | ${ms(o.p90)} | ${ms(o.p99)} | ${ms(o.max)} | ${o.failed} |`;
}

/** Open-loop load: request i leaves at t0 + i/rate; its latency runs from that moment to the end of its response. */
export async function paced(base: string, path: () => string, rate: number, seconds: number): Promise<Outcome> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const total = Math.round(rate * seconds);
  const latencies = new Float64Array(total);
  let failed = 0;
  let done = 0;
  const t0 = performance.now() + 20;
  const due = (i: number) => t0 + (i * 1000) / rate;
  await new Promise<void>((resolve) => {
    const finish = (i: number, ok: boolean) => {
      latencies[i] = performance.now() - due(i);
      if (!ok) failed++;
      if (++done === total) resolve();
    };
    let next = 0;
    const tick = () => {
      while (next < total && due(next) <= performance.now()) {
        const i = next++;
        http.get(`${base}${path()}`, { agent }, (response) => {
          response.resume();
          response.on('end', () => finish(i, response.statusCode === 200));
        }).on('error', () => finish(i, false));
      }
      if (next < total) setTimeout(tick, Math.max(0, due(next) - performance.now()));
    };
    tick();
  });
  agent.destroy();
  const elapsed = (performance.now() - t0) / 1000;
  const sorted = [...latencies].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return { rate: total / elapsed, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted[sorted.length - 1], failed };
}
