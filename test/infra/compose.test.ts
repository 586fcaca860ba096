import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import {
  COMPOSE_FILE,
  ONE_SHOT_SERVICES,
  ROOT,
  TICKFLOW_SERVICES,
  loadCompose,
  runCompose,
  tickflowCommands,
  tickflowServiceSpecs,
} from './compose-services.ts';

const { config, source } = loadCompose();
const services = config.services;
const env = (name: string): Record<string, string | null> => services[name]?.environment ?? {};

describe(`docker-compose.yml (read with ${source})`, () => {
  it('is valid for Docker Compose', () => {
    const r = runCompose(['config', '-q']);
    assert.ok(r, 'neither `docker compose` nor `docker-compose` is installed (.ci/run installs docker-compose)');
    assert.equal(r.status, 0, `${r.tool} config -q: ${r.stderr}`);
  });

  it('declares Kafka, topic creation, PostgreSQL and every tickflow service', () => {
    for (const name of ['kafka', 'kafka-init', 'postgres', ...TICKFLOW_SERVICES]) {
      assert.ok(services[name], `service ${name} is missing`);
    }
  });

  it('runs Kafka from the official image in KRaft mode (no ZooKeeper), same version as the local broker', () => {
    const kafka = services.kafka;
    const pomVersion = /<kafka\.version>([^<]+)</.exec(readFileSync(path.join(ROOT, 'infra/kafka/pom.xml'), 'utf8'))?.[1];
    assert.equal(kafka.image, `apache/kafka:${pomVersion}`);
    const e = env('kafka');
    assert.deepEqual(e.KAFKA_PROCESS_ROLES?.split(',').sort(), ['broker', 'controller']);
    assert.equal(e.KAFKA_NODE_ID, '1');
    assert.match(e.KAFKA_CONTROLLER_QUORUM_VOTERS ?? '', /^1@kafka:9093$/);
    assert.equal(e.KAFKA_CONTROLLER_LISTENER_NAMES, 'CONTROLLER');
    assert.match(e.KAFKA_ADVERTISED_LISTENERS ?? '', /(^|,)PLAINTEXT:\/\/kafka:9092(,|$)/);
    assert.match(e.CLUSTER_ID ?? '', /^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/, 'CLUSTER_ID is a 22-character Kafka Uuid');
    assert.match(JSON.stringify(kafka.healthcheck?.test), /kafka-broker-api-versions\.sh/);
    for (const [name, s] of Object.entries(services)) {
      assert.doesNotMatch(String(s.image ?? ''), /zookeeper/i, `${name} uses ZooKeeper`);
      assert.ok(!Object.keys(s.environment ?? {}).some((k) => /ZOOKEEPER/i.test(k)), `${name} configures ZooKeeper`);
    }
  });

  it('creates the pipeline topics once Kafka is healthy', () => {
    const init = services['kafka-init'];
    assert.equal(init.depends_on?.kafka?.condition, 'service_healthy');
    assert.equal(init.restart, 'no');
    const script = JSON.stringify([init.entrypoint, init.command]);
    assert.match(script, /kafka-topics\.sh/);
    assert.match(script, /--if-not-exists/);
    for (const topic of ['prices', 'stocks', 'volatility', 'user-tracker']) {
      assert.match(script, new RegExp(`\\b${topic}\\b`), `topic ${topic} is not created`);
    }
  });

  it('runs PostgreSQL 15 with a health check and a named volume', () => {
    const pg = services.postgres;
    assert.match(pg.image ?? '', /^postgres:15/);
    assert.match(JSON.stringify(pg.healthcheck?.test), /pg_isready/);
    assert.equal(env('postgres').POSTGRES_DB, 'tickflow');
    assert.ok(config.volumes && 'pg-data' in config.volumes, 'named volume pg-data');
    assert.match(JSON.stringify(pg.volumes), /pg-data/);
  });

  it('builds every tickflow service from one image (the Dockerfile)', () => {
    const first = services[TICKFLOW_SERVICES[0]];
    assert.ok(first.image, 'tickflow services name their image');
    assert.deepEqual(first.build, { context: ROOT, dockerfile: 'Dockerfile' });
    for (const name of TICKFLOW_SERVICES) {
      assert.equal(services[name].image, first.image, `${name} image`);
      assert.deepEqual(services[name].build, first.build, `${name} build`);
      assert.ok(!services[name].entrypoint, `${name} keeps the image entrypoint`);
    }
    const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    assert.match(dockerfile, /^FROM node:24-slim\b/m);
    assert.match(dockerfile, /npm ci --omit=dev/);
    assert.match(dockerfile, /^ENTRYPOINT \["node", "bin\/tickflow\.js"\]$/m);
    // npm ci's postinstall (the Kafka client bundle) needs its script and module in the deps stage.
    const install = dockerfile.indexOf('RUN npm ci');
    for (const file of ['scripts/kafka-bundle.ts', 'src/cli/kafka-bundle.ts']) {
      const copied = dockerfile.indexOf(`COPY ${file} `);
      assert.ok(copied >= 0 && copied < install, `${file} is copied before npm ci`);
    }
    const ignored = readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
    for (const entry of ['node_modules', '.git', '.tickflow']) assert.ok(ignored.includes(entry), `.dockerignore lists ${entry}`);
  });

  it('migrates once PostgreSQL is healthy, then starts tickflow services after the topics exist and the migration', () => {
    assert.equal(services['db-migrate'].depends_on?.postgres?.condition, 'service_healthy', 'db-migrate waits for postgres');
    for (const name of TICKFLOW_SERVICES.filter((n) => n !== 'db-migrate')) {
      const deps = services[name].depends_on ?? {};
      assert.equal(deps['kafka-init']?.condition, 'service_completed_successfully', `${name} waits for kafka-init`);
      assert.equal(deps['db-migrate']?.condition, 'service_completed_successfully', `${name} waits for the migration`);
    }
    assert.equal(services.consumer.depends_on?.producer?.condition, 'service_completed_successfully', 'stats runs after the prices batch');
  });

  it('health-checks every long-running service and serves metrics from each', () => {
    for (const name of TICKFLOW_SERVICES.filter((n) => !ONE_SHOT_SERVICES.includes(n))) {
      const check = services[name].healthcheck as { test?: string[] } | undefined;
      assert.ok(check?.test?.join(' ').includes('http://127.0.0.1:'), `${name} has an HTTP health check`);
      assert.equal(env(name).METRICS_PORT, '9464', `${name} METRICS_PORT`);
    }
    assert.match(String(env('data-api').READ_DATABASE_URL), /^postgres:\/\/tickflow_reader:/, 'the API reads through the read-only role');
  });

  it('points every tickflow service at Kafka and PostgreSQL by service name', () => {
    for (const name of TICKFLOW_SERVICES) {
      assert.equal(env(name).KAFKA_BROKERS, 'kafka:9092', `${name} KAFKA_BROKERS`);
      assert.equal(env(name).DATABASE_URL, 'postgres://postgres:postgres@postgres:5432/tickflow', `${name} DATABASE_URL`);
    }
  });

  it('restarts long-running services, never the one-shot jobs', () => {
    for (const name of TICKFLOW_SERVICES) {
      const expected = ONE_SHOT_SERVICES.includes(name) ? 'no' : 'unless-stopped';
      assert.equal(services[name].restart, expected, `${name} restart`);
    }
    assert.deepEqual(services.replayer.profiles, ['replay'], 'the replayer only runs when asked for');
  });

  it('gives each tickflow service its exact command line', () => {
    assert.deepEqual(tickflowCommands(), {
      'db-migrate': ['migrate'],
      producer: ['produce', 'prices'],
      consumer: ['stats'],
      replayer: ['replay', '/data/user-tracker.jsonl', '--output', 'user-tracker'],
      'data-generator': ['generate', 'stocks'],
      'data-aggregator': ['aggregate', 'stocks'],
      'data-api': ['api', '--host', '0.0.0.0', '--port', '8080'],
      indicators: ['indicators'],
      archive: ['archive', '--input', 'prices'],
      'unique-users': ['unique-users'],
      'clean-users': ['clean-users'],
    });
    const specs = tickflowServiceSpecs();
    assert.deepEqual(specs.filter((s) => s.oneShot).map((s) => s.name), ['db-migrate', 'producer', 'consumer', 'replayer']);
    assert.ok(specs.every((s) => s.environment.KAFKA_BROKERS === 'kafka:9092'));
  });

  it('publishes the API on 8080 with a /healthz health check', () => {
    const api = services['data-api'];
    assert.match(JSON.stringify(api.ports), /8080/);
    assert.match(JSON.stringify(api.healthcheck?.test), /\/healthz/);
  });

  it('is the file the tests read', () => {
    assert.ok(existsSync(COMPOSE_FILE));
  });
});
