import { createRequire } from 'node:module';
import type * as PromClient from 'prom-client';

/**
 * The metrics every pipeline reports, labelled by pipeline name. One registry per process
 * (prom-client's default), served at /metrics by the API or a service's --metrics-port.
 *
 * Metrics are kept only in a process that serves them: `enableMetrics()` (--metrics-port, the
 * API, `up`) comes before any pipeline runs; until then every metric is a no-op and prom-client
 * (with the tracing API it loads, ~85 modules, ~70 ms) is not even loaded, which a short
 * command like `stats` or `produce prices` feels.
 */

type Client = typeof PromClient;
const load = createRequire(import.meta.url);
let client: Client | undefined;
const onLoad: ((client: Client) => void)[] = [];

/** prom-client, loaded on first use. */
export function promClient(): Client {
  if (!client) {
    client = load('prom-client') as Client;
    for (const make of onLoad) make(client);
  }
  return client;
}

/** Makes `make`'s metrics as soon as prom-client is loaded (metrics with a `collect`). */
export function whenMetricsLoad(make: (client: Client) => void): void {
  if (client) make(client);
  else onLoad.push(make);
}

let enabled = false;

/** From now on metrics are kept (prom-client loaded, every metric made). */
export function enableMetrics(): void {
  enabled = true;
  promClient();
}

/** What a metric is while nobody serves metrics: it takes every update and keeps nothing. */
const NO_METRIC = { inc() {}, set() {}, observe() {} };

/** A metric made when metrics are enabled; a no-op before. */
export function lazyMetric<T>(make: (client: Client) => T): () => T {
  let made: T | undefined;
  whenMetricsLoad((loaded) => void (made ??= make(loaded)));
  return () => made ?? (enabled ? (promClient(), made!) : (NO_METRIC as T));
}

const made = {
  recordsIn: lazyMetric((p) => new p.Counter({ name: 'tickflow_records_in_total', help: 'Records read from the log', labelNames: ['pipeline', 'topic'] as const })),
  recordsOut: lazyMetric((p) => new p.Counter({ name: 'tickflow_records_out_total', help: 'Records or rows written', labelNames: ['pipeline', 'sink'] as const })),
  invalid: lazyMetric((p) => new p.Counter({ name: 'tickflow_invalid_total', help: 'Malformed records (counted, dead-lettered)', labelNames: ['pipeline', 'reason'] as const })),
  late: lazyMetric((p) => new p.Counter({ name: 'tickflow_late_total', help: 'Records later than the allowed lateness', labelNames: ['pipeline'] as const })),
  deadLettered: lazyMetric((p) => new p.Counter({ name: 'tickflow_dead_lettered_total', help: 'Records sent to a dead-letter or side topic', labelNames: ['pipeline', 'topic'] as const })),
  batchSeconds: lazyMetric(
    (p) =>
      new p.Histogram({
        name: 'tickflow_batch_seconds',
        help: 'Time to process one batch end to end (including the sink commit)',
        labelNames: ['pipeline'] as const,
        buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      }),
  ),
  watermarkLagSeconds: lazyMetric((p) => new p.Gauge({ name: 'tickflow_watermark_lag_seconds', help: 'Wall clock minus the event-time watermark', labelNames: ['pipeline'] as const })),
  consumerLag: lazyMetric((p) => new p.Gauge({ name: 'tickflow_consumer_lag', help: 'End offset minus next offset, per partition', labelNames: ['pipeline', 'topic', 'partition'] as const })),
  windowEmitSeconds: lazyMetric(
    (p) =>
      new p.Histogram({
        name: 'tickflow_window_emit_seconds',
        help: 'Wall-clock delay between a window end and its emission',
        labelNames: ['pipeline'] as const,
        buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120],
      }),
  ),
};

export const metrics = {
  get recordsIn() { return made.recordsIn(); },
  get recordsOut() { return made.recordsOut(); },
  get invalid() { return made.invalid(); },
  get late() { return made.late(); },
  get deadLettered() { return made.deadLettered(); },
  get batchSeconds() { return made.batchSeconds(); },
  get watermarkLagSeconds() { return made.watermarkLagSeconds(); },
  get consumerLag() { return made.consumerLag(); },
  get windowEmitSeconds() { return made.windowEmitSeconds(); },
};

/** prom-client's default registry, with every tickflow metric in it (metrics are enabled). */
export function registry(): PromClient.Registry {
  enableMetrics();
  return promClient().register;
}
