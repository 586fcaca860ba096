import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { jsonLines, run } from './helpers.ts';
import { rootUidTs } from './reference.ts';

describe('generate users', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tickflow-generate-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes seeded user records: same seed, same bytes; another seed, other bytes', async () => {
    const [a, b, c] = await Promise.all([run(['generate', 'users', '--count', '200', '--seed', 's1']), run(['generate', 'users', '--count', '200', '--seed', 's1']), run(['generate', 'users', '--count', '200', '--seed', 's2'])]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(a.stdout, b.stdout);
    assert.notEqual(a.stdout, c.stdout);
    const users = jsonLines<Record<string, unknown>>(a.stdout);
    assert.equal(users.length, 200);
    assert.deepEqual(Object.keys(users[0]), ['id', 'first_name', 'last_name', 'email', 'gender', 'ip_address', 'date', 'country']);
    const ids = users.map((u) => u.id);
    assert.ok(new Set(ids).size < ids.length, 'exact duplicates are part of the dirt');
    assert.ok(users.some((u) => typeof u.country === 'string' && u.country === u.country.toLowerCase()), 'lower-case countries');
  });

  it('writes frames to a .gz file: ~2 KB each, a share late, a JSON array on request', async () => {
    const file = join(dir, 'frames.jsonl.gz');
    const result = await run(['generate', 'users', '--frames', '--count', '2000', '--late-share', '0.05', '-o', file]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /^wrote 2000 frames \(\d+ bytes, \d+ late\) to .*frames\.jsonl\.gz in [\d.]+ s\n$/);
    const lines = gunzipSync(await readFile(file)).toString('utf8').trim().split('\n');
    assert.equal(lines.length, 2000);
    const mean = lines.reduce((n, l) => n + Buffer.byteLength(l), 0) / lines.length;
    assert.ok(mean > 1500 && mean < 2600, `mean frame size ${mean}`);
    for (const l of lines) assert.ok(rootUidTs(l), 'every frame has a root uid and ts');
    const array = await run(['generate', 'users', '--frames', '--count', '5', '--format', 'array']);
    assert.equal((JSON.parse(array.stdout) as unknown[]).length, 5);
  });

  it('replaces a share of lines by non-JSON with --bad-share', async () => {
    const result = await run(['generate', 'users', '--count', '1000', '--bad-share', '0.05']);
    const bad = result.stdout.trim().split('\n').filter((l) => {
      try {
        JSON.parse(l);
        return false;
      } catch {
        return true;
      }
    });
    assert.ok(bad.length > 20 && bad.length < 90, `${bad.length} bad lines`);
  });
});
