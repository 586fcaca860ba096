/**
 * `tickflow up` on the embedded defaults: the prices batch and its statistics, then the
 * services; the API answers with aggregated rows; Ctrl-C stops everything cleanly.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN } from '../helpers/cli.ts';

describe('tickflow up (embedded defaults)', () => {
  it('runs the batch, serves aggregates from the live services, and stops on SIGINT', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tickflow-up-'));
    const env = { ...process.env };
    delete env.KAFKA_BROKERS;
    delete env.DATABASE_URL;
    const child = spawn(process.execPath, [BIN, 'up', '--port', '0', '--count', '2000', '--rate', '50', '--data-dir', dataDir], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    try {
      const deadline = Date.now() + 60_000;
      while (!/dashboard: (http:\/\/\S+)\/dashboard/.test(stdout)) {
        if (Date.now() > deadline || child.exitCode !== null) assert.fail(`no dashboard URL:\n${stdout}\n${stderr}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.match(stdout, /produced 2000 messages/);
      assert.match(stdout, /messages: 2000 {3}valid: 2000 {3}invalid: 0/);
      assert.match(stdout, /outliers \(\|price - mean\| > 3 x sample stddev\)/);
      const base = /dashboard: (http:\/\/\S+)\/dashboard/.exec(stdout)![1];
      assert.equal((await fetch(`${base}/healthz`)).status, 200);
      assert.equal((await fetch(`${base}/readyz`)).status, 200);
      // The aggregator closes its first 30-second window once the watermark passes it.
      let rows: Array<{ ticker: string; sampleCount?: number }> = [];
      const rowsDeadline = Date.now() + 90_000;
      while (rows.length === 0) {
        if (Date.now() > rowsDeadline) assert.fail(`no aggregates from the API:\n${stderr}`);
        await new Promise((r) => setTimeout(r, 1000));
        const body = (await (await fetch(`${base}/v1/get-prices`)).json()) as { data: typeof rows };
        rows = body.data;
      }
      assert.ok(rows.every((r) => ['AMZN', 'MSFT', 'AAPL'].includes(r.ticker)), JSON.stringify(rows));
      const metrics = await (await fetch(`${base}/metrics`)).text();
      assert.match(metrics, /tickflow_records_in_total\{pipeline="aggregate-stocks"/);
    } finally {
      child.kill('SIGINT');
      const code = await exited;
      rmSync(dataDir, { recursive: true, force: true });
      assert.equal(code, 0, stderr);
    }
  });
});
