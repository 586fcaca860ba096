/**
 * One run of the fault table: start the pipeline's processes, watch their progress, strike
 * 1 s after they first made progress or once a fifth of the work is done, whichever comes
 * first (so the fault lands mid-run), wait for the result
 * (a bounded command exits 0; a service reaches the expected state and is stopped with
 * Ctrl-C), check it, heal the fault (restart the broker, wait for the replicas), and
 * append the row — also when something failed on the way.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { killBroker, leaderOf, restartBrokers, waitForFullIsr, waitForNewLeader } from './cluster.ts';
import { appendResult } from './fault-table.ts';
import { ProgressWatch } from './progress.ts';
import type { Probe } from './progress.ts';
import { startTickflow } from './tickflow-process.ts';
import type { TickflowProcess } from './tickflow-process.ts';
import type { PostgresServer } from '../helpers/postgres-server.ts';

export const KAFKA_LEADER_KILL = 'kafka: leader kill -9';
export const PG_RESTART = 'postgres: restart -m fast';
export const PG_KILL = 'postgres: kill -9';

/** What a fault left to undo, run in the background while the pipeline goes on. */
export type Healing = Promise<void>;

/** kill -9 of the leader of topic/partition; heals by restarting it once another broker leads. */
export async function killLeader(topic: string, partition: number): Promise<{ healing: Healing; note: string }> {
  const leader = await leaderOf(topic, partition);
  await killBroker(leader);
  const healing = (async () => {
    await waitForNewLeader(topic, partition, leader.id);
    await restartBrokers();
    await waitForFullIsr();
  })();
  return { healing, note: `broker ${leader.id} (leader of ${topic}/${partition})` };
}

export async function restartPostgres(server: PostgresServer): Promise<{ healing: Healing; note: string }> {
  await server.restart();
  return { healing: Promise.resolve(), note: 'restarted' };
}

/** kill -9 of the postmaster; started again after 2 s down. */
export async function killPostgres(server: PostgresServer): Promise<{ healing: Healing; note: string }> {
  const pid = await server.kill();
  const healing = (async () => {
    await sleep(2000);
    await server.start();
  })();
  return { healing, note: `postmaster ${pid}` };
}

export class FaultRun {
  readonly pipeline: string;
  readonly fault: string;
  readonly processes: TickflowProcess[] = [];
  readonly #startedAt = Date.now();
  #watch: ProgressWatch | null = null;
  #faultAt: number | null = null;
  #doneAt: number | null = null;
  #healing: Healing | null = null;
  #survived = true;
  #exact: boolean | null = null;
  #note: string | undefined;

  constructor(pipeline: string, fault: string) {
    this.pipeline = pipeline;
    this.fault = fault;
  }

  /** Starts `tickflow ARGS`; its log is test-artifacts/faults/<pipeline>--<fault>--<name>.log. */
  async start(name: string, args: readonly string[]): Promise<TickflowProcess> {
    const slug = (text: string) => text.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '');
    const started = await startTickflow(`${slug(this.pipeline)}--${slug(this.fault)}--${name}`, args);
    this.processes.push(started);
    return started;
  }

  watch(probe: Probe): ProgressWatch {
    this.#watch = new ProgressWatch(probe);
    return this.#watch;
  }

  /**
   * Strikes 1 s after the first progress. `total`: what the counter reaches at the end of
   * the run — it must not have got there yet, or the fault did not land mid-run.
   */
  async strike(inject: () => Promise<{ healing: Healing; note: string }>, options: { total?: number } = {}): Promise<void> {
    const watch = this.#watch!;
    await this.#whileRunning(async () => watch.firstProgressAt() !== undefined, 'the first progress', 180_000);
    // 1 s after the first progress, or as soon as a fifth of the work is done when that
    // comes first (a fast pipeline on a quiet machine is through 150,000 records in 1 s).
    const due = watch.firstProgressAt()! + 1000;
    const early = options.total === undefined ? Infinity : options.total / 5;
    while (Date.now() < due && watch.latest < early) await sleep(20);
    this.#assertRunning('before the fault');
    if (options.total !== undefined) {
      assert.ok(watch.latest < options.total, `the run was done (${watch.latest} of ${options.total}) before the fault: give it more data`);
    }
    this.#faultAt = Date.now();
    const { healing, note } = await inject();
    this.#note = note;
    this.#healing = healing;
    // A healing that fails is reported when the run finishes, not as an unhandled rejection.
    healing.catch(() => undefined);
  }

  /** A bounded run: every process exits by itself, with 0. */
  async waitForExit(timeoutMs = 300_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (const p of this.processes) {
      const timeout = new AbortController();
      const exit = await Promise.race([p.exited, sleep(Math.max(0, deadline - Date.now()), null, { signal: timeout.signal }).catch(() => null)]);
      timeout.abort();
      if (exit === null) {
        this.#fail(`${p.name} still running after ${timeoutMs / 1000}s`);
        assert.fail(`${p.name} did not finish in ${timeoutMs / 1000}s\n${p.tail()}`);
      }
      if (exit.code !== 0) {
        this.#survived = false;
        this.#fail(`${p.name} exited ${exit.code ?? exit.signal}: ${lastLine(p.stderr)}`);
        assert.fail(`${p.name} exited with ${exit.code ?? exit.signal}\n${p.tail()}`);
      }
    }
    this.#doneAt = Date.now();
  }

  /** A service: waits until `done` (the expected result is there), every process still running. */
  async waitUntil(done: () => Promise<boolean>, what: string, timeoutMs = 300_000): Promise<void> {
    await this.#whileRunning(done, what, timeoutMs);
    this.#doneAt = Date.now();
  }

  /** Ctrl-C to every process still running: each must finish and exit 0. */
  async stopAll(): Promise<void> {
    for (const p of this.processes) {
      const exit = await p.stop();
      if (exit.code !== 0) {
        this.#survived = false;
        this.#fail(`${p.name} exited ${exit.code ?? exit.signal} on Ctrl-C`);
        assert.fail(`${p.name} exited with ${exit.code ?? exit.signal} on Ctrl-C\n${p.tail()}`);
      }
    }
  }

  /** Runs the result's assertions; their outcome is the row's "exact". */
  async verify(check: () => Promise<void>): Promise<void> {
    try {
      await check();
      this.#exact = true;
    } catch (error) {
      this.#exact = false;
      this.#fail(firstLine((error as Error).message));
      throw error;
    }
  }

  /** Adds a fact worth a look to the row's note (duplicates the guarantee allows, say). */
  observe(note: string): void {
    this.#fail(note);
  }

  /** Always, in `finally`: stops what still runs, waits for the fault to be healed, appends the row. */
  async finish(): Promise<void> {
    this.#watch?.stop();
    for (const p of this.processes) if (p.running) await p.stop(10_000);
    let healError: unknown = null;
    if (this.#healing) await this.#healing.catch((error: unknown) => (healError = error));
    appendResult({
      fault: this.fault,
      pipeline: this.pipeline,
      survived: this.#survived,
      progressAgainSeconds: this.#faultAt === null ? null : (this.#watch?.recoverySeconds(this.#faultAt) ?? null),
      totalSeconds: ((this.#doneAt ?? Date.now()) - this.#startedAt) / 1000,
      exact: this.#exact,
      note: this.#note,
    });
    if (healError) throw new Error(`healing the fault failed: ${(healError as Error).message}`);
  }

  async #whileRunning(done: () => Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.#assertRunning(`while waiting for ${what}`);
      if (await done().catch(() => false)) return;
      if (Date.now() > deadline) {
        this.#fail(`no ${what} after ${timeoutMs / 1000}s`);
        assert.fail(`timed out after ${timeoutMs / 1000}s waiting for ${what}\n${this.processes.map((p) => p.tail()).join('\n')}`);
      }
      await sleep(250);
    }
  }

  #assertRunning(when: string): void {
    const gone = this.processes.find((p) => !p.running);
    if (!gone) return;
    this.#survived = false;
    this.#fail(`${gone.name} exited ${gone.exit?.code ?? gone.exit?.signal} ${when}: ${lastLine(gone.stderr)}`);
    assert.fail(`${gone.name} exited (${gone.exit?.code ?? gone.exit?.signal}) ${when}\n${gone.tail()}`);
  }

  #fail(note: string): void {
    this.#note = this.#note ? `${this.#note}; ${note}` : note;
  }
}

const firstLine = (text: string) => text.split('\n')[0].slice(0, 400);

function lastLine(text: string): string {
  const lines = text.trim().split('\n');
  return (lines.at(-1) ?? '').slice(0, 160);
}
