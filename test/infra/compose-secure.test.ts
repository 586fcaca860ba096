/**
 * The compose profile `secure` (docs/operations.md): its tickflow services run as their own
 * principals with every secret from a file, and its Kafka init creates exactly the ACLs of
 * src/log/acls.ts. Docker is not needed: the file is read as Compose reads it.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { SERVICE_ACLS, aclCommands, aclTopics } from '../../src/log/acls.ts';
import { ROOT, loadCompose, runCompose } from './compose-services.ts';

const { config } = loadCompose();
const INIT = readFileSync(path.join(ROOT, 'infra/compose-secure/kafka-init.sh'), 'utf8');
const secured = Object.entries(config.services).filter(([name, s]) => name.startsWith('secure-') && s.image === 'tickflow:local' && name !== 'secure-migrate');

describe('docker-compose.yml, profile secure', () => {
  it('is valid for Docker Compose with the profile on', () => {
    const r = runCompose(['config', '-q']);
    assert.ok(r, 'neither `docker compose` nor `docker-compose` is installed');
    assert.equal(r.status, 0, r.stderr);
  });

  it('creates exactly the ACLs and topics of the one table', () => {
    const acls = INIT.split('\n').filter((l) => l.startsWith('kafka-acls.sh '));
    assert.equal(`${acls.join('\n')}\n`, aclCommands('kafka-secure:9096', '"$admin"'));
    const topics = /for topic in ([^;]+);/.exec(INIT)?.[1].trim().split(/\s+/);
    assert.deepEqual(topics, aclTopics());
  });

  it('runs each tickflow service as the principal the table gives its command, secrets from files only', () => {
    assert.equal(secured.length, 9);
    for (const [name, service] of secured) {
      const env = service.environment ?? {};
      const words = (service.command as string[]).join(' ');
      const acl = SERVICE_ACLS.find((s) => words === s.service || words.startsWith(`${s.service} `));
      assert.ok(acl, `${name}: no ACL row for "${words}"`);
      assert.equal(env.KAFKA_SASL_USERNAME, acl.principal, name);
      assert.equal(env.KAFKA_SASL_PASSWORD_FILE, `/var/lib/tickflow-secrets/credentials/${acl.principal}.password`, name);
      assert.equal(env.KAFKA_SASL_MECHANISM, 'SCRAM-SHA-512', name);
      assert.equal(env.KAFKA_SASL_PASSWORD, undefined, name);
      for (const key of ['DATABASE_URL', 'READ_DATABASE_URL']) {
        const url = env[key];
        if (url == null) continue;
        assert.equal(new URL(url).password, '', `${name} ${key} holds a password`);
        assert.equal(new URL(url).searchParams.get('sslmode'), 'verify-full', `${name} ${key}`);
      }
    }
  });
});
