/** Secrets from files: --kafka-sasl-password-file and --database-password-file (never argv). */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { resolveShared } from '../../src/cli/config.ts';

describe('secrets from files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tickflow-secret-files-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string): string => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };
  const sasl = { 'kafka-sasl-mechanism': 'SCRAM-SHA-512', 'kafka-sasl-username': 'tf-stats' };

  it('reads the SASL password from the file, one trailing newline dropped', () => {
    const shared = resolveShared({ ...sasl, 'kafka-sasl-password-file': file('kafka', 's3cret \n') }, {});
    assert.deepEqual(shared.kafkaSasl, { mechanism: 'SCRAM-SHA-512', username: 'tf-stats', password: 's3cret ' });
  });

  it('refuses a file and KAFKA_SASL_PASSWORD together, an empty file and a missing one', () => {
    assert.throws(() => resolveShared({ ...sasl, 'kafka-sasl-password-file': file('k2', 'x') }, { KAFKA_SASL_PASSWORD: 'y' }), {
      message: 'both KAFKA_SASL_PASSWORD and --kafka-sasl-password-file are set: use one',
    });
    const empty = file('empty', '\n');
    assert.throws(() => resolveShared({ ...sasl, 'kafka-sasl-password-file': empty }, {}), { message: `--kafka-sasl-password-file: ${empty} is empty` });
    assert.throws(() => resolveShared({ ...sasl, 'kafka-sasl-password-file': join(dir, 'nope') }, {}), { message: `--kafka-sasl-password-file: cannot read ${join(dir, 'nope')} (ENOENT)` });
    assert.throws(() => resolveShared(sasl, {}), { message: 'KAFKA_SASL_PASSWORD or --kafka-sasl-password-file must be set when --kafka-sasl-mechanism is given' });
  });

  it('puts the database password from the file into the URL (encoded), refusing a URL that has one', () => {
    const pw = file('pg', 'p@ss/word\n');
    const shared = resolveShared({ 'database-url': 'postgres://writer@db:5432/tickflow?sslmode=verify-full', 'database-password-file': pw }, {});
    assert.equal(shared.databaseUrl, 'postgres://writer:p%40ss%2Fword@db:5432/tickflow?sslmode=verify-full');
    assert.throws(() => resolveShared({ 'database-url': 'postgres://writer:x@db/tickflow', 'database-password-file': pw }, {}), {
      message: '--database-password-file: --database-url already holds a password: use one of them',
    });
  });
});
