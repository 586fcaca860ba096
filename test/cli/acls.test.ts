/** `tickflow acls` and the ACL table of docs/operations.md: both the one table of src/log/acls.ts. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { defaultTransactionalId } from '../../src/cli/transaction-flags.ts';
import { SERVICE_ACLS, aclBindings, aclTopics } from '../../src/log/acls.ts';
import { KafkaTransactionCommitter } from '../../src/runtime/commit-kafka-transaction.ts';
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
      SERVICE_ACLS.map(
        (s) =>
          `| \`${s.service}\` | \`User:${s.principal}\` | ${cell(s.reads)} | ${cell(s.writes)} | ${cell(s.describes)} | ${cell(s.groups)} | ${cell(s.describesGroups)} | ${cell(s.transactionalIds)} | ${cell(s.describesTransactionalIds)} |`,
      ),
    );
  });

  it('grants each transactional service Write on the prefix of the transactional ids it uses, and nothing else transactional', () => {
    const prefixes = (service: string): string[] => (SERVICE_ACLS.find((s) => s.service === service)?.transactionalIds ?? []).map((p) => p.replace(/\*$/, ''));
    const covered = (service: string, id: string) => prefixes(service).some((p) => id.startsWith(p));
    // The ids the exactly-once pipelines take, for their default groups and topics, and the producers' default ids.
    assert.ok(covered('indicators', KafkaTransactionCommitter.transactionalId('indicators', 'tickflow-indicators', new Map([['prices', [0, 1, 2]]]))));
    assert.ok(covered('indicators', KafkaTransactionCommitter.transactionalId('indicators', 'tickflow-indicators', new Map())), 'a bounded run without the group');
    assert.ok(covered('unique-users', KafkaTransactionCommitter.transactionalId('unique-users', 'unique-users', new Map([['user-tracker', [0, 1, 2]]]))));
    assert.ok(covered('clean-users', KafkaTransactionCommitter.transactionalId('clean-users', 'clean-users', new Map([['users', [1]]]))));
    for (const [service, command, topic] of [['produce prices', 'produce-prices', 'prices'], ['generate stocks', 'generate-stocks', 'stocks'], ['replay', 'replay', 'users']]) {
      assert.ok(covered(service, defaultTransactionalId(command, topic)), service);
    }
    // One service's prefix never covers another's ids.
    for (const s of SERVICE_ACLS) {
      for (const other of SERVICE_ACLS.filter((o) => o !== s)) {
        for (const p of prefixes(s.service)) assert.ok(!prefixes(other.service).some((q) => q.startsWith(p)), `${s.service} ${p} covers ${other.service}`);
      }
    }
    const transactional = aclBindings().filter((b) => b.resource === 'transactional-id');
    assert.deepEqual(transactional.map((b) => `${b.principal} ${b.operation} ${b.name}${b.prefixed ? '*' : ''}`), [
      'User:tf-produce-prices Write tickflow-produce-prices-*',
      'User:tf-generate-stocks Write tickflow-generate-stocks-*',
      'User:tf-replay Write tickflow-replay-*',
      'User:tf-indicators Write tickflow-indicators-*',
      'User:tf-unique-users Write tickflow-unique-users-*',
      'User:tf-clean-users Write tickflow-clean-users-*',
      'User:tf-monitor Describe *',
    ]);
  });

  it('--commands: a transactional id prefix as kafka-acls.sh writes it', async () => {
    const r = await tickflow(['acls', '--commands']);
    assert.ok(
      r.stdout.split('\n').includes("kafka-acls.sh --bootstrap-server BROKER:9093 --command-config admin.properties --add --allow-principal User:tf-indicators --operation Write --transactional-id 'tickflow-indicators-' --resource-pattern-type prefixed"),
      r.stdout,
    );
  });
});
