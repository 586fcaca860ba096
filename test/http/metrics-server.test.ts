import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { serveMetrics } from '../../src/http/metrics-server.ts';
import { MemoryLog } from '../../src/log/memory.ts';
import { generateStocks } from '../../src/pipelines/generate-stocks.ts';

describe('metrics endpoint of the generator and aggregator (--metrics-port)', () => {
  it('serves the pipeline counters in the Prometheus text format, and only /metrics', async () => {
    const server = await serveMetrics({ host: '127.0.0.1', port: 0 });
    try {
      await generateStocks(new MemoryLog(), {
        topic: 'metrics-stocks', partitions: 1, rate: 100_000, tickers: [{ name: 'AMZN', mean: 1902 }], spread: 0.1,
        seed: 'm', startTime: 0, count: 7, durationMs: null,
      });
      const response = await fetch(server.url);
      assert.equal(response.status, 200);
      assert.match(response.headers.get('content-type') ?? '', /^text\/plain/);
      const text = await response.text();
      assert.match(text, /tickflow_records_out_total\{pipeline="generate-stocks",sink="metrics-stocks"\} 7/);
      assert.match(text, /process_resident_memory_bytes/);
      assert.equal((await fetch(server.url.replace('/metrics', '/other'))).status, 404);
    } finally {
      await server.close();
    }
  });
});
