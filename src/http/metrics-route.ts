/** /metrics in the Prometheus text format (prom-client's default registry), and per-request timings. */
import type { FastifyInstance } from 'fastify';
import { Histogram, collectDefaultMetrics } from 'prom-client';
import { registry } from '../observability/metrics.ts';

const requestSeconds = new Histogram({
  name: 'tickflow_http_request_seconds',
  help: 'HTTP request duration by route and status',
  labelNames: ['method', 'route', 'status'] as const,
  buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
});

let defaultsCollected = false;

export function registerMetricsRoute(app: FastifyInstance): void {
  if (!defaultsCollected && !registry().getSingleMetric('process_cpu_user_seconds_total')) collectDefaultMetrics();
  defaultsCollected = true;
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    requestSeconds.observe({ method: request.method, route, status: String(reply.statusCode) }, reply.elapsedTime / 1000);
  });
  app.get('/metrics', { schema: { summary: 'Prometheus metrics', tags: ['operations'], hide: false } }, async (_request, reply) => {
    reply.header('content-type', registry().contentType);
    return registry().metrics();
  });
}
