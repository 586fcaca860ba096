import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { KafkaLog } from '../../src/log/kafka.ts';
import { KAFKA_BROKERS } from '../helpers/env.ts';
import { logContract } from './contract.ts';

logContract({ name: 'kafka', open: async () => new KafkaLog({ brokers: KAFKA_BROKERS }), groupTimeoutMs: 30_000 });

/**
 * A process whose last KafkaLog is closed must be able to exit: no client may be made after
 * close() by a call that was under way (the classification of its error asks for the topic
 * list; a retry asks for offsets again), or its connection keeps the process alive.
 * The scenario runs in its own process, which must exit by itself.
 */
const CLOSE_WHILE_CALLING = `
const { KafkaLog } = await import(${JSON.stringify(new URL('../../src/log/kafka.ts', import.meta.url).href)});
const brokers = ${JSON.stringify(KAFKA_BROKERS)};
let n = 0;
const missing = () => 'never-created-' + process.pid + '-' + Date.now().toString(36) + '-' + ++n;
const outcome = (promise) => promise.then(() => 'resolved', (error) => error.code ?? String(error));
const results = {};
// Closed while its call waits for Kafka.
const a = new KafkaLog({ brokers });
const pending = outcome(a.offsets(missing()));
await a.close();
results.underWay = await pending;
// Two logs asked together, the second one made for the question and closed as soon as either fails
// (how a reader waits for settled transactions): the other's call is still under way then.
const b = new KafkaLog({ brokers });
const both = [];
let c;
for (let i = 0; i < 5; i++) {
  c = new KafkaLog({ brokers, isolationLevel: 'read_uncommitted' });
  const topic = missing();
  try {
    await Promise.all([b.offsets(topic), c.offsets(topic)]);
    both.push('resolved');
  } catch (error) {
    both.push(error.code);
  } finally {
    await c.close();
  }
}
await b.close();
results.together = both;
results.closeAgain = await outcome(c.close());
// Used after close: it refuses, rather than making clients that nothing would close.
results.afterClose = await outcome(c.offsets(missing()));
results.afterCloseMessage = await c.listTopics().then((topics) => 'listed ' + topics.length + ' topics', (error) => error.message);
try { c.producer(); results.producer = 'made'; } catch (error) { results.producer = error.code; }
try { c.subscribe({ group: missing(), topics: [missing()] }); results.subscribe = 'made'; } catch (error) { results.subscribe = error.code; }
process.stdout.write(JSON.stringify(results));
`;

describe('KafkaLog.close on real Kafka', () => {
  it('a call under way when the log closes makes no client after it: the process exits, and the closed log refuses every use', async () => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', CLOSE_WHILE_CALLING], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      child.kill('SIGKILL');
    }, 30_000);
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    clearTimeout(timer);
    assert.equal(killed, false, `the process did not exit by itself within 30 s (a connection left open); it printed ${stdout}`);
    assert.equal(code, 0, stderr);
    const results = JSON.parse(stdout) as Record<string, unknown>;
    // The call that was under way ends (the topic is missing, or the log closed under it); it never succeeds.
    assert.ok(['UNKNOWN_TOPIC', 'LOG_ERROR'].includes(results.underWay as string), `under way: ${String(results.underWay)}`);
    assert.deepEqual(results.together, Array(5).fill('UNKNOWN_TOPIC'));
    assert.equal(results.afterClose, 'LOG_ERROR');
    assert.equal(results.afterCloseMessage, `kafka ${KAFKA_BROKERS.join(',')} is closed`);
    assert.equal(results.producer, 'LOG_ERROR');
    assert.equal(results.subscribe, 'LOG_ERROR');
    assert.equal(results.closeAgain, 'resolved');
  });
});
