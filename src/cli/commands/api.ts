import { once } from 'node:events';
import { connectWithRetry, createPostgresDatabase } from '../../db/postgres.ts';
import type { Database } from '../../db/types.ts';
import { buildApp } from '../../http/app.ts';
import { defineCommand } from '../command.ts';
import { badFlag, int, str } from '../flags.ts';

export const command = defineCommand({
  name: ['api'],
  summary: 'Serve the REST API: GET /v1/get-prices, /docs, /healthz, /readyz, /metrics',
  description: [
    'GET /v1/get-prices without parameters returns each ticker\'s most recent 30-second aggregate;',
    'with ticker (one or a comma list), startTime and/or endTime (ISO 8601 or epoch ms) it returns',
    'the aggregates in that range ordered by time, paginated with limit and cursor. Bad parameters',
    'are a 400 with a JSON error naming the parameter. OpenAPI at /docs/json, interactive at /docs.',
    'Reads go through --read-database-url (a role that can only SELECT) when given, else --database-url.',
  ].join('\n'),
  flags: {
    host: { type: 'string', value: 'HOST', default: '127.0.0.1', description: 'Interface to listen on (0.0.0.0 for all)' },
    port: { type: 'string', value: 'N', env: 'PORT', default: '8080', description: 'TCP port (0 = any free port)' },
    'read-database-url': { type: 'string', value: 'URL', env: 'READ_DATABASE_URL', description: 'PostgreSQL URL of a read-only role for queries (default: --database-url)' },
  },
  examples: [
    'tickflow api --database-url postgres://postgres@127.0.0.1:5432/tickflow',
    'tickflow api --host 0.0.0.0 --port 8080 --read-database-url postgres://tickflow_reader@db:5432/tickflow',
    'curl "http://127.0.0.1:8080/v1/get-prices?ticker=AMZN,MSFT&startTime=2024-05-01T12:00:00Z&limit=50"',
  ],
  configure(values) {
    const readDatabaseUrl = str(values, 'read-database-url') ?? null;
    if (readDatabaseUrl !== null && !/^postgres(ql)?:\/\//.test(readDatabaseUrl)) throw badFlag('read-database-url', 'expects a postgres:// or postgresql:// URL');
    const host = str(values, 'host') ?? '127.0.0.1';
    if (host.trim() === '') throw badFlag('host', 'is required');
    return { host, port: int(values, 'port', 8080, { min: 0, max: 65_535 }), readDatabaseUrl };
  },
  async run({ config, shared, logger, signal, out, openDatabase }) {
    let db: Database;
    let ownDb: Database | null = null;
    if (config.readDatabaseUrl) {
      ownDb = createPostgresDatabase(config.readDatabaseUrl, { applicationName: 'tickflow-api', logger });
      await connectWithRetry(ownDb, { logger });
      db = ownDb;
    } else {
      db = await openDatabase();
    }
    const app = await buildApp({ db, logger });
    try {
      const address = await app.listen({ host: config.host, port: config.port });
      logger.info({ address, database: db.description }, 'api listening');
      if (shared.json) out.write(`${JSON.stringify({ url: address, docs: `${address}/docs` })}\n`);
      else out.write(`api listening on ${address} (docs: ${address}/docs)\n`);
      if (!signal.aborted) await once(signal, 'abort');
    } finally {
      await app.close();
      await ownDb?.close();
    }
  },
});
