/**
 * `up`'s supervision, with parts that fail on cue: a part that stops before the whole has
 * started stops the others and is the one failure; one that stops later is restarted and
 * listed among the problems the dashboard shows until it runs again.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { Supervisor } from '../../src/cli/supervisor.ts';
import type { Part } from '../../src/cli/supervisor.ts';
import { supervisionProblems } from '../../src/observability/supervision.ts';

const discard = new Writable({ write: (_chunk, _encoding, done) => done() });
const part = (name: string): Part => ({ name, args: [name], out: discard });
const untilAborted = (signal: AbortSignal) => new Promise<number>((resolve) => signal.addEventListener('abort', () => resolve(0), { once: true }));

async function until(predicate: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!predicate()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('up supervision', () => {
  it('a part that stops before the whole has started stops the others; its error is the one failure', async () => {
    const stop = new AbortController();
    const warnings: string[] = [];
    const starts = new Map<string, number>();
    const supervisor = new Supervisor(stop, { warn: (_d, m) => warnings.push(m) }, async (p, err) => {
      starts.set(p.name, (starts.get(p.name) ?? 0) + 1);
      if (p.name === 'api') {
        err.write('tickflow api: port 8080 on 127.0.0.1 is in use: stop what listens there\n');
        return 2;
      }
      return untilAborted(stop.signal);
    });
    await Promise.all([supervisor.run(part('aggregate stocks')), supervisor.run(part('api'))]);
    assert.deepEqual(supervisor.failure, { message: 'api failed to start: port 8080 on 127.0.0.1 is in use: stop what listens there', code: 2 });
    assert.ok(stop.signal.aborted, 'the other parts were stopped');
    assert.deepEqual([...starts], [['aggregate stocks', 1], ['api', 1]], 'nothing restarted');
    assert.deepEqual(warnings, []);
  });

  it('a part that stops once started is restarted, shown as a problem until it runs again, and nothing is a failure', async () => {
    const stop = new AbortController();
    const warnings: Array<{ details: object; message: string }> = [];
    let starts = 0;
    const supervisor = new Supervisor(stop, { warn: (details, message) => warnings.push({ details, message }) }, async (_p, err) => {
      if (++starts === 1) {
        err.write('tickflow aggregate stocks: database lost\n');
        return 4;
      }
      return untilAborted(stop.signal);
    });
    supervisor.started = true;
    const running = supervisor.run(part('aggregate stocks'));
    await until(() => supervisionProblems().length === 1, 'the problem');
    assert.deepEqual(supervisionProblems(), [{ where: 'tickflow up: aggregate stocks', message: 'stopped (exit 4: database lost); restart 1 in 1 s' }]);
    assert.deepEqual(warnings, [{ details: { part: 'aggregate stocks', code: 4, error: 'database lost', restartInMs: 1000 }, message: 'aggregate stocks stopped (exit 4: database lost); restart 1 in 1 s' }]);
    await until(() => starts === 2, 'the restart');
    await until(() => supervisionProblems().length === 0, 'the part to count as running again');
    stop.abort();
    await running;
    assert.equal(supervisor.failure, null);
    assert.equal(starts, 2);
  });
});
