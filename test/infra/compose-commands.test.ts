/**
 * Every tickflow service of docker-compose.yml, run outside Docker with its exact command
 * line and environment, against the real Kafka and PostgreSQL: only the host names are
 * mapped (kafka:9092 → the local broker, postgres → an isolated schema on the local
 * server), and the replayer's mounted /data file → a temporary file. One-shot jobs must
 * exit 0; long-running services must pass their own compose health check and stop cleanly
 * on SIGTERM.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KafkaLog } from '../../src/log/kafka.ts';
import { BIN } from '../helpers/cli.ts';
import { KAFKA_BROKERS } from '../helpers/env.ts';
import { isolatedDatabase } from '../stocks/fixtures.ts';
import type { IsolatedDatabase } from '../stocks/fixtures.ts';
import { loadCompose, tickflowServiceSpecs } from './compose-services.ts';

const specs = tickflowServiceSpecs();
const { config } = loadCompose();

describe('docker-compose services, run outside Docker with their exact command lines', () => {
  let db: IsolatedDatabase;
  let dir: string;
  const env = (environment: Record<string, string>): NodeJS.ProcessEnv => {
    const mapped: NodeJS.ProcessEnv = { ...process.env };
    for (const [key, value] of Object.entries(environment)) {
      if (key === 'KAFKA_BROKERS') mapped[key] = KAFKA_BROKERS.join(',');
      else if (key === 'DATABASE_URL') mapped[key] = db.url;
      else if (key === 'READ_DATABASE_URL') continue; // the reader role exists in the compose database only (tested in test/http)
      else if (key === 'METRICS_HOST') mapped[key] = '127.0.0.1';
      else mapped[key] = value;
    }
    return mapped;
  };
  const command = (args: string[]) => args.map((a) => (a === '/data/user-tracker.jsonl' ? join(dir, 'user-tracker.jsonl') : a));

  before(async () => {
    db = await isolatedDatabase('compose_commands');
    dir = mkdtempSync(join(tmpdir(), 'tickflow-compose-'));
    const now = Math.floor(Date.now() / 1000);
    writeFileSync(join(dir, 'user-tracker.jsonl'), Array.from({ length: 200 }, (_, i) => JSON.stringify({ uid: `u${i % 37}`, ts: now - 200 + i, page: '/x' })).join('\n') + '\n');
    // What kafka-init does: the topics, 3 partitions each.
    const init = (config.services['kafka-init'].command as string[]).join('\n');
    const topics = /for topic in ([^;]+);/.exec(init)![1].trim().split(/\s+/);
    const log = new KafkaLog({ brokers: KAFKA_BROKERS });
    await log.createTopics(topics.map((name) => ({ name, partitions: 3 })));
    await log.close();
  });
  after(async () => {
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  const run = (args: string[], environment: NodeJS.ProcessEnv) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [BIN, ...args], { env: environment, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });

  for (const spec of specs.filter((s) => s.oneShot)) {
    it(`${spec.name}: tickflow ${spec.command.join(' ')} exits 0`, async () => {
      const result = await run(command(spec.command), env(spec.environment));
      assert.equal(result.code, 0, result.stderr);
      if (spec.name === 'producer') assert.match(result.stdout, /^produced 5000 messages/);
      if (spec.name === 'consumer') assert.match(result.stdout, /^messages: \d+/);
    });
  }

  for (const spec of specs.filter((s) => !s.oneShot)) {
    it(`${spec.name}: tickflow ${spec.command.join(' ')} passes its health check and stops on SIGTERM`, async () => {
      const child = spawn(process.execPath, [BIN, ...command(spec.command)], { env: env(spec.environment), stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
      try {
        const check = (config.services[spec.name].healthcheck as { test: string[] }).test;
        assert.equal(check[0], 'CMD');
        const deadline = Date.now() + 60_000;
        // The compose health check itself, run here: `node -e "fetch(...)"`.
        while (spawnSync(process.execPath, check.slice(2), { encoding: 'utf8' }).status !== 0) {
          if (child.exitCode !== null) assert.fail(`${spec.name} exited ${child.exitCode}: ${stderr}`);
          if (Date.now() > deadline) assert.fail(`${spec.name} never became healthy: ${stderr}`);
          await new Promise((r) => setTimeout(r, 250));
        }
        // Healthy is not enough: it must still be running once its pipeline has started.
        await new Promise((r) => setTimeout(r, 2000));
        assert.equal(child.exitCode, null, `${spec.name} stopped by itself: ${stderr}`);
      } finally {
        child.kill('SIGTERM');
      }
      assert.equal(await exited, 0, stderr);
    });
  }
});
