import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tickflow } from '../helpers/cli.ts';

describe('indicators and archive flags', () => {
  const cases: Array<[string[], string]> = [
    [['indicators', '--points', '2'], 'tickflow indicators: --points: must be at least 3, got 2 (see --help)\n'],
    [['indicators', '--output', 'prices'], 'tickflow indicators: --output: must differ from --input (see --help)\n'],
    [['indicators', '--input', 'a b'], 'tickflow indicators: --input: "a b" is not a valid topic name (letters, digits, . _ -) (see --help)\n'],
    [['indicators', '--price-field', 'ts'], 'tickflow indicators: --price-field: the ts, symbol and price fields must be three different names (see --help)\n'],
    [['indicators', '--exactly-once', '--at-least-once'], 'tickflow indicators: --at-least-once: cannot be combined with --exactly-once (see --help)\n'],
    [['indicators', '--commit-interval', 'soon'], 'tickflow indicators: --commit-interval: expects a duration such as 500ms, 30s, 5m or 1h, got "soon" (see --help)\n'],
    [['indicators', '--isolation-level', 'dirty'], 'tickflow indicators: --isolation-level: expects one of read_committed, read_uncommitted, got "dirty" (see --help)\n'],
    [['archive'], 'tickflow archive: --input: is required (the topic to archive) (see --help)\n'],
    [['archive', '--input', 'ok,not ok'], 'tickflow archive: --input: "not ok" is not a valid topic name (letters, digits, . _ -) (see --help)\n'],
  ];
  for (const [args, stderr] of cases) {
    it(`${args.join(' ')} fails with one line, exit 2`, async () => {
      const result = await tickflow(args, { env: { KAFKA_BROKERS: '', DATABASE_URL: '' } });
      assert.equal(result.code, 2);
      assert.equal(result.stderr, stderr);
    });
  }

  it('documents both commands in --help', async () => {
    const indicators = await tickflow(['indicators', '--help']);
    assert.equal(indicators.code, 0);
    assert.match(indicators.stdout, /--points N/);
    assert.match(indicators.stdout, /sample standard deviation of the log returns/);
    assert.match(indicators.stdout, /--at-least-once/);
    assert.match(indicators.stdout, /--commit-interval DURATION/);
    const archive = await tickflow(['archive', '--help']);
    assert.equal(archive.code, 0);
    assert.match(archive.stdout, /--from-beginning/);
  });

  it('runs on the embedded defaults: an empty prices topic, then exits with --until-end', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tickflow-indicators-cli-'));
    try {
      const result = await tickflow(['indicators', '--until-end', '--json', '--data-dir', dataDir], { env: { KAFKA_BROKERS: '', DATABASE_URL: '' } });
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(JSON.parse(result.stdout), { read: 0, published: 0, deadLettered: 0 });
      // The embedded log has no transactions: asking for exactly once is refused in one line.
      const refused = await tickflow(['indicators', '--until-end', '--exactly-once', '--data-dir', dataDir], { env: { KAFKA_BROKERS: '', DATABASE_URL: '', LOG_LEVEL: 'silent' } });
      assert.equal(refused.code, 2);
      assert.equal(refused.stderr, 'tickflow indicators: indicators: exactly once needs Kafka transactions, which the embedded log does not have (connect to Kafka, or commit at least once)\n');
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
