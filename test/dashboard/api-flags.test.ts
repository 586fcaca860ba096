/** `tickflow api`'s dashboard flags are validated at start, in one line naming the flag. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { tickflow } from '../helpers/cli.ts';

describe('tickflow api: dashboard flags', () => {
  const cases: Array<[string[], string]> = [
    [['--dashboard-topics', 'stocks,bad topic'], 'tickflow api: --dashboard-topics: "bad topic" is not a topic name (letters, digits, ".", "_", "-") (see --help)\n'],
    [['--dashboard-topics', ' , '], 'tickflow api: --dashboard-topics: expects a comma-separated list of topics, or "all" (see --help)\n'],
    [['--unique-users-topic', 'a/b'], 'tickflow api: --unique-users-topic: "a/b" is not a topic name (letters, digits, ".", "_", "-") (see --help)\n'],
  ];
  for (const [args, message] of cases) {
    it(args.join(' '), async () => {
      const result = await tickflow(['api', ...args]);
      assert.equal(result.code, 2);
      assert.equal(result.stderr, message);
    });
  }

  it('--help documents the dashboard', async () => {
    const result = await tickflow(['api', '--help']);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /--dashboard-topics LIST/);
    assert.match(result.stdout, /--unique-users-topic TOPIC/);
    assert.match(result.stdout, /live dashboard is at \//);
  });
});
