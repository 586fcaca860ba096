/** /healthz: the process serves. /readyz: and the database answers with the stocks table readable. */
import type { FastifyInstance } from 'fastify';
import { probeStockWindows } from '../db/stock-prices.ts';
import type { Queryable } from '../db/types.ts';
import { currentOutages } from '../observability/retry.ts';

const status = {
  type: 'object',
  required: ['status'],
  properties: { status: { type: 'string' }, reason: { type: 'string' } },
} as const;

export function registerHealthRoutes(app: FastifyInstance, deps: { db: Queryable; readyTimeoutMs?: number }): void {
  app.get('/healthz', { schema: { summary: 'Liveness', tags: ['operations'], response: { 200: status } } }, async () => ({ status: 'ok' }));

  app.get('/readyz', { schema: { summary: 'Readiness: the database is reachable and migrated', tags: ['operations'], response: { 200: status, 503: status } } }, async (request, reply) => {
    const outages = currentOutages();
    if (outages.length > 0) {
      // The outage's error (addresses, SQLSTATEs) is in the log already; the client gets what and since when.
      const reason = outages.map((o) => `waiting for ${o.dependency} since ${new Date(o.since).toISOString()}`).join('; ');
      return reply.status(503).send({ status: 'not ready', reason });
    }
    const timeoutMs = deps.readyTimeoutMs ?? 2_000;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        probeStockWindows(deps.db),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs}ms`)), timeoutMs);
        }),
      ]);
      return { status: 'ready' };
    } catch (error) {
      request.log.warn({ err: (error as Error).message }, 'not ready');
      return reply.status(503).send({ status: 'not ready', reason: 'database unreachable or not migrated' });
    } finally {
      clearTimeout(timer);
    }
  });
}
