import { Counter, Gauge, Histogram, register } from 'prom-client';

/**
 * The metrics every pipeline reports, labelled by pipeline name. One registry per process
 * (prom-client's default), served at /metrics by the API or a service's --metrics-port.
 */
export const metrics = {
  recordsIn: new Counter({ name: 'tickflow_records_in_total', help: 'Records read from the log', labelNames: ['pipeline', 'topic'] as const }),
  recordsOut: new Counter({ name: 'tickflow_records_out_total', help: 'Records or rows written', labelNames: ['pipeline', 'sink'] as const }),
  invalid: new Counter({ name: 'tickflow_invalid_total', help: 'Malformed records (counted, dead-lettered)', labelNames: ['pipeline', 'reason'] as const }),
  late: new Counter({ name: 'tickflow_late_total', help: 'Records later than the allowed lateness', labelNames: ['pipeline'] as const }),
  deadLettered: new Counter({ name: 'tickflow_dead_lettered_total', help: 'Records sent to a dead-letter or side topic', labelNames: ['pipeline', 'topic'] as const }),
  batchSeconds: new Histogram({
    name: 'tickflow_batch_seconds',
    help: 'Time to process one batch end to end (including the sink commit)',
    labelNames: ['pipeline'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  }),
  watermarkLagSeconds: new Gauge({ name: 'tickflow_watermark_lag_seconds', help: 'Wall clock minus the event-time watermark', labelNames: ['pipeline'] as const }),
  consumerLag: new Gauge({ name: 'tickflow_consumer_lag', help: 'End offset minus next offset, per partition', labelNames: ['pipeline', 'topic', 'partition'] as const }),
  windowEmitSeconds: new Histogram({
    name: 'tickflow_window_emit_seconds',
    help: 'Wall-clock delay between a window end and its emission',
    labelNames: ['pipeline'] as const,
    buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120],
  }),
};

export { register };
