/** `tickflow acls` and the ACL table of docs/operations.md: both the one table of src/log/acls.ts. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { SERVICE_ACLS, aclBindings, aclTopics } from '../../src/log/acls.ts';
import { tickflow } from '../helpers/cli.ts';

describe('tickflow acls', () => {
  it('--print: one line per service, each naming its principal and rights', async () => {
    const r = await tickflow(['acls', '--print']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines.length, SERVICE_ACLS.length + 1);
    for (const [i, s] of SERVICE_ACLS.entries()) {
      assert.ok(lines[i + 1].startsWith(s.service), lines[i + 1]);
      assert.ok(lines[i + 1].includes(`User:${s.principal}`), lines[i + 1]);
      for (const topic of [...s.reads, ...s.writes]) assert.ok(lines[i + 1].includes(topic), `${s.service}: ${topic}`);
    }
  });

  it('--json: the services, their topics and every binding', async () => {
    const r = await tickflow(['acls', '--json']);
    const out = JSON.parse(r.stdout) as { services: unknown[]; topics: string[]; bindings: { principal: string; resource: string; name: string; prefixed: boolean; operation: string }[] };
    assert.deepEqual(out.topics, aclTopics());
    assert.deepEqual(out.bindings, aclBindings());
    assert.ok(out.bindings.some((b) => b.principal === 'User:tf-archive' && b.resource === 'group' && b.name === 'tickflow-archive-' && b.prefixed));
  });

  it('--commands: one kafka-acls.sh line per binding', async () => {
    const r = await tickflow(['acls', '--commands', '--bootstrap-server', 'k:9096', '--command-config', 'a.properties']);
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines.length, aclBindings().length);
    assert.equal(lines[0], "kafka-acls.sh --bootstrap-server k:9096 --command-config a.properties --add --allow-principal User:tf-produce-prices --operation Write --topic 'prices'");
  });

  it('docs/operations.md shows the same table', () => {
    const doc = readFileSync(new URL('../../docs/operations.md', import.meta.url), 'utf8');
    const rows = doc.split('\n').filter((l) => /^\| `[a-z -]+` \| `User:/.test(l));
    const cell = (xs?: readonly string[]): string => (xs && xs.length > 0 ? xs.map((x) => `\`${x}\``).join(', ') : '–');
    assert.deepEqual(
      rows,
      SERVICE_ACLS.map((s) => `| \`${s.service}\` | \`User:${s.principal}\` | ${cell(s.reads)} | ${cell(s.writes)} | ${cell(s.describes)} | ${cell(s.groups)} | ${cell(s.describesGroups)} |`),
    );
  });
});
