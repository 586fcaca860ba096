import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { TickflowError, isTickflowError } from '../../src/core/errors.ts';
import { DEFAULT_RETRY_FOR_MS, configureRetries, currentOutages, withRetries } from '../../src/observability/retry.ts';

const unavailable = () => new TickflowError('LOG_UNAVAILABLE', 'Connection to 127.0.0.1:9094 failed');

describe('withRetries', () => {
  const lines: string[] = [];
  const logger = { warn: (_: object, msg: string) => lines.push(`warn ${msg}`), info: (_: object, msg: string) => lines.push(`info ${msg}`) };
  afterEach(() => {
    configureRetries({ retryForMs: DEFAULT_RETRY_FOR_MS, initialDelayMs: 100, logIntervalMs: 10_000, logger: null });
    lines.length = 0;
  });

  it('retries retriable errors until the operation succeeds, with one log line per interval', async () => {
    configureRetries({ initialDelayMs: 1, maxDelayMs: 2, logIntervalMs: 60_000, logger });
    let calls = 0;
    let seenDuring: number | null = null;
    const result = await withRetries('kafka', 'produce to prices', async () => {
      calls++;
      if (calls < 5) {
        seenDuring = currentOutages().length;
        throw unavailable();
      }
      return 'sent';
    });
    assert.equal(result, 'sent');
    assert.equal(calls, 5);
    assert.equal(seenDuring, 1, 'the outage is visible while waiting');
    assert.deepEqual(currentOutages(), [], 'and gone once it answers');
    assert.deepEqual(lines, ['warn waiting for kafka: produce to prices failed; retrying', 'info kafka answers again']);
  });

  it('does not retry errors waiting cannot cure', async () => {
    let calls = 0;
    await assert.rejects(
      withRetries('postgres', 'commit', async () => {
        calls++;
        throw new TickflowError('DB_ERROR', 'syntax error');
      }),
      (e) => isTickflowError(e, 'DB_ERROR'),
    );
    assert.equal(calls, 1);
  });

  it('gives up after --retry-for with one error naming the dependency and the last error', async () => {
    configureRetries({ retryForMs: 60, initialDelayMs: 5, maxDelayMs: 10 });
    let calls = 0;
    const started = Date.now();
    await assert.rejects(
      withRetries('kafka', 'list offsets of prices', async () => {
        calls++;
        throw unavailable();
      }),
      (e) => isTickflowError(e, 'LOG_LOST') && !e.retriable && /^Kafka unavailable for \d+s \(--retry-for 0s\): list offsets of prices: Connection to 127\.0\.0\.1:9094 failed$/.test(e.message),
    );
    assert.ok(calls >= 3, `retried (${calls} calls)`);
    assert.ok(Date.now() - started >= 60);
    assert.deepEqual(currentOutages(), []);
  });

  it('nested retries share one deadline per outage', async () => {
    configureRetries({ retryForMs: 80, initialDelayMs: 5, maxDelayMs: 10 });
    const started = Date.now();
    await assert.rejects(
      withRetries('kafka', 'outer', () => withRetries('kafka', 'inner', async () => Promise.reject(unavailable())), {
        isRetriable: (e) => isTickflowError(e, 'LOG_UNAVAILABLE'),
      }),
      (e) => isTickflowError(e, 'LOG_LOST'),
    );
    assert.ok(Date.now() - started < 400, 'the outer loop does not start a second deadline');
  });

  it('stops waiting when aborted', async () => {
    configureRetries({ initialDelayMs: 10_000, maxDelayMs: 10_000 });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 20);
    const started = Date.now();
    await assert.rejects(withRetries('postgres', 'claim', async () => Promise.reject(new TickflowError('DB_UNAVAILABLE', 'down')), { signal: controller.signal }), (e) => isTickflowError(e, 'DB_UNAVAILABLE'));
    assert.ok(Date.now() - started < 2_000);
  });
});
