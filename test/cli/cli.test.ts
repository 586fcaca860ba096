import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { BIN, tickflow } from '../helpers/cli.ts';

// Each embedded run gets a data dir of its own: the embedded log keeps its topics there.
const root = mkdtempSync(join(tmpdir(), 'tickflow-cli-'));
after(() => rmSync(root, { recursive: true, force: true }));
const embedded = () => ({ env: { KAFKA_BROKERS: '', TICKFLOW_DATA_DIR: mkdtempSync(join(root, 'data-')) } });

describe('tickflow CLI', () => {
  it('lists its commands with --help and exits 0', async () => {
    const result = await tickflow(['--help']);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /Usage: tickflow <command>/);
    assert.match(result.stdout, /\n {2}topics +List topics/);
  });

  it('prints help for a command', async () => {
    const result = await tickflow(['topics', '--help']);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /Usage: tickflow topics \[flags\]/);
    assert.match(result.stdout, /--brokers LIST/);
  });

  it('rejects a bad flag value with one line naming the flag, exit 2', async () => {
    const result = await tickflow(['topics', '--partitions', 'many']);
    assert.equal(result.code, 2);
    assert.equal(result.stderr, 'tickflow topics: --partitions: expects an integer, got "many" (see --help)\n');
    assert.equal(result.stdout, '');
  });

  it('rejects an unknown flag and an unknown command, exit 2', async () => {
    const unknownFlag = await tickflow(['topics', '--nope']);
    assert.equal(unknownFlag.code, 2);
    assert.equal(unknownFlag.stderr, 'tickflow topics: unknown flag --nope (see --help)\n');
    const unknownCommand = await tickflow(['frobnicate']);
    assert.equal(unknownCommand.code, 2);
    assert.equal(unknownCommand.stderr.trim().split('\n').length, 1);
  });

  it('judges a negative number given as a value by the flag\'s own rule', async () => {
    const result = await tickflow(['stats', '--z', '-1']);
    assert.equal(result.code, 2);
    assert.equal(result.stderr, 'tickflow stats: --z: must be greater than 0, got -1 (see --help)\n');
  });

  it('validates shared flags from the environment too', async () => {
    const result = await tickflow(['topics'], { env: { KAFKA_BROKERS: 'no-port-here' } });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /^tickflow topics: --brokers: expects host:port/);
  });

  it('runs on the embedded log by default and prints JSON results to stdout', async () => {
    const result = await tickflow(['topics', '--create', 'alpha,beta', '--partitions', '2', '--json'], embedded());
    assert.equal(result.code, 0, result.stderr);
    const parsed = JSON.parse(result.stdout);
    assert.deepEqual(parsed.topics.map((t: { name: string; partitions: number }) => [t.name, t.partitions]), [['alpha', 2], ['beta', 2]]);
  });

  it('ends quietly with exit 0 when the reader of its output goes away (`| head -1`)', async () => {
    const child = spawn(process.execPath, [BIN, 'produce', 'prices', '-n', '500000', '--output', '-'], { env: { ...process.env, ...embedded().env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const firstLine = await new Promise<string>((resolve) => {
      let text = '';
      child.stdout.on('data', (chunk: Buffer) => {
        text += chunk.toString();
        if (text.includes('\n')) resolve(text.slice(0, text.indexOf('\n')));
      });
    });
    child.stdout.destroy(); // as `head -1` exits after its line
    const [code, signal] = await once(child, 'exit');
    assert.match(firstLine, /^\{"ts":/);
    assert.deepEqual([code, signal], [0, null], stderr);
    assert.equal(stderr, '', 'no EPIPE stack');
  });
});

describe('tickflow topics --create', () => {
  it('takes replication, min ISR and configs; the embedded log accepts and ignores them', async () => {
    const result = await tickflow(['topics', '--create', 'gamma', '--replication-factor', '3', '--min-insync-replicas', '2', '--config', 'retention.ms=60000', '--config', 'cleanup.policy=delete', '--json'], embedded());
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout).topics.map((t: { name: string }) => t.name), ['gamma']);
  });

  it('keeps --replication as a deprecated alias', async () => {
    const result = await tickflow(['topics', '--create', 'delta', '--replication', '2', '--json'], embedded());
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /--replication is deprecated: use --replication-factor/);
  });

  const bad: Array<[string[], string]> = [
    [['--replication-factor', '0'], '--replication-factor: must be at least 1, got 0'],
    [['--replication-factor', 'three'], '--replication-factor: expects an integer, got "three"'],
    [['--replication-factor', '2', '--replication', '2'], '--replication: is the deprecated alias of --replication-factor: give only --replication-factor'],
    [['--replication-factor', '2', '--min-insync-replicas', '3'], '--min-insync-replicas: must not exceed the replication factor 2, got 3'],
    [['--config', 'retention.ms'], '--config: expects KEY=VALUE, got "retention.ms"'],
    [['--config', 'a=1', '--config', 'a=2'], '--config: sets a twice'],
    [['--config', 'min.insync.replicas=2', '--min-insync-replicas', '2'], '--config: sets min.insync.replicas, which --min-insync-replicas sets too'],
  ];
  for (const [flags, message] of bad) {
    it(`refuses ${flags.join(' ')} with one line naming the flag`, async () => {
      const result = await tickflow(['topics', '--create', 'x', ...flags], embedded());
      assert.equal(result.code, 2);
      assert.equal(result.stderr, `tickflow topics: ${message} (see --help)\n`);
    });
  }
});

describe('command registry', () => {
  it('finds every command from its words alone, loading only its file', async () => {
    const { loadCommandFor, loadCommands } = await import('../../src/cli/registry.ts');
    const all = await loadCommands();
    assert.ok(all.length >= 15, `only ${all.length} commands`);
    for (const command of all) {
      const found = await loadCommandFor([...command.name, '--json', 'x']);
      assert.equal(found, command, `tickflow ${command.name.join(' ')} is not in ${command.name.join('-')}.ts`);
    }
    assert.equal((await loadCommandFor(['replay', 'frames.jsonl']))?.name.join(' '), 'replay');
    assert.equal((await loadCommandFor(['generate', 'users']))?.name.join(' '), 'generate users');
    assert.equal(await loadCommandFor(['generate']), null);
    assert.equal(await loadCommandFor(['../x']), null);
    assert.equal(await loadCommandFor(['--help']), null);
  });
});
