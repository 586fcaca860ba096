import { once } from 'node:events';
import { connectWithRetry, createPostgresDatabase } from '../../db/postgres.ts';
import type { Database } from '../../db/types.ts';
import { buildApp } from '../../http/app.ts';
import { DEFAULT_DASHBOARD_TOPICS } from '../../http/live-snapshot.ts';
import { withPasswordFile } from '../config.ts';
import { defineCommand } from '../command.ts';
import { badFlag, int, str } from '../flags.ts';

const TOPIC = /^[A-Za-z0-9._-]{1,249}$/;

export const command = defineCommand({
  name: ['api'],
  servesMetrics: true,
  summary: 'Serve the REST API and the live dashboard: /v1/get-prices, /dashboard, /docs, /healthz, /readyz, /metrics',
  description: [
    'GET /v1/get-prices without parameters returns each ticker\'s most recent 30-second aggregate;',
    'with ticker (one or a comma list), startTime and/or endTime (ISO 8601 or epoch ms) it returns',
    'the aggregates in that range ordered by time, paginated with limit and cursor. Bad parameters',
    'are a 400 with a JSON error naming the parameter. OpenAPI at /docs/json, interactive at /docs.',
    'Reads go through --read-database-url (a role that can only SELECT) when given, else --database-url.',
    'The live dashboard is at / (GET /dashboard; its data: GET /v1/dashboard once, GET /v1/live as',
    'server-sent events). Throughput, lag and unique users per minute come from the log (--brokers,',
    'else the embedded log), 30-second aggregates and indicators from the database.',
  ].join('\n'),
  flags: {
    host: { type: 'string', value: 'HOST', default: '127.0.0.1', description: 'Interface to listen on (0.0.0.0 for all)' },
    port: { type: 'string', value: 'N', env: 'PORT', default: '8080', description: 'TCP port (0 = any free port)' },
    'read-database-url': { type: 'string', value: 'URL', env: 'READ_DATABASE_URL', description: 'PostgreSQL URL of a read-only role for queries (default: --database-url)' },
    'read-database-password-file': { type: 'string', value: 'FILE', env: 'READ_DATABASE_PASSWORD_FILE', description: 'File holding the password of --read-database-url\'s user' },
    'dashboard-topics': { type: 'string', value: 'LIST', description: `Topics the dashboard shows throughput and lag for, or "all" (default: tickflow's own: ${DEFAULT_DASHBOARD_TOPICS.join(',')})` },
    'unique-users-topic': { type: 'string', value: 'TOPIC', default: 'unique-users', description: 'Topic of the unique-users minute records the dashboard charts' },
  },
  examples: [
    'tickflow api --database-url postgres://postgres@127.0.0.1:5432/tickflow',
    'tickflow api --host 0.0.0.0 --port 8080 --read-database-url postgres://tickflow_reader@db:5432/tickflow',
    'curl "http://127.0.0.1:8080/v1/get-prices?ticker=AMZN,MSFT&startTime=2024-05-01T12:00:00Z&limit=50"',
    'tickflow api --brokers 127.0.0.1:9092 --dashboard-topics stocks,prices,volatility   # then open http://127.0.0.1:8080/',
  ],
  configure(values) {
    let readDatabaseUrl = str(values, 'read-database-url') ?? null;
    if (readDatabaseUrl !== null && !/^postgres(ql)?:\/\//.test(readDatabaseUrl)) throw badFlag('read-database-url', 'expects a postgres:// or postgresql:// URL');
    if (readDatabaseUrl !== null) readDatabaseUrl = withPasswordFile(readDatabaseUrl, values, 'read-database-url', 'read-database-password-file');
    const host = str(values, 'host') ?? '127.0.0.1';
    if (host.trim() === '') throw badFlag('host', 'is required');
    const topicsRaw = str(values, 'dashboard-topics');
    let dashboardTopics: readonly string[] | 'all' = DEFAULT_DASHBOARD_TOPICS;
    if (topicsRaw === 'all') dashboardTopics = 'all';
    else if (topicsRaw !== undefined) {
      dashboardTopics = [...new Set(topicsRaw.split(',').map((t) => t.trim()).filter(Boolean))];
      if (dashboardTopics.length === 0) throw badFlag('dashboard-topics', 'expects a comma-separated list of topics, or "all"');
      const bad = dashboardTopics.find((t) => !TOPIC.test(t));
      if (bad !== undefined) throw badFlag('dashboard-topics', `"${bad}" is not a topic name (letters, digits, ".", "_", "-")`);
    }
    const uniqueUsersTopic = str(values, 'unique-users-topic') ?? 'unique-users';
    if (!TOPIC.test(uniqueUsersTopic)) throw badFlag('unique-users-topic', `"${uniqueUsersTopic}" is not a topic name (letters, digits, ".", "_", "-")`);
    return { host, port: int(values, 'port', 8080, { min: 0, max: 65_535 }), readDatabaseUrl, dashboardTopics, uniqueUsersTopic };
  },
  async run({ config, shared, logger, signal, out, openDatabase, openLog }) {
    let db: Database;
    let ownDb: Database | null = null;
    if (config.readDatabaseUrl) {
      ownDb = createPostgresDatabase(config.readDatabaseUrl, { applicationName: 'tickflow-api', logger });
      await connectWithRetry(ownDb, { logger });
      db = ownDb;
    } else {
      db = await openDatabase();
    }
    const log = await openLog();
    const app = await buildApp({ db, logger, log, dashboard: { topics: config.dashboardTopics, uniqueUsersTopic: config.uniqueUsersTopic } });
    try {
      const address = await app.listen({ host: config.host, port: config.port });
      logger.info({ address, database: db.description }, 'api listening');
      if (shared.json) out.write(`${JSON.stringify({ url: address, docs: `${address}/docs`, dashboard: `${address}/dashboard` })}\n`);
      else out.write(`api listening on ${address} (docs: ${address}/docs, dashboard: ${address}/dashboard)\n`);
      if (!signal.aborted) await once(signal, 'abort');
    } finally {
      await app.close();
      await ownDb?.close();
    }
  },
});
