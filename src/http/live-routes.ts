/**
 * GET /v1/dashboard: the dashboard snapshot once, as JSON (for curl and tests).
 * GET /v1/live: the same snapshot as server-sent events, one `data:` line per interval,
 * for as long as the client stays. Open streams end when the app closes, so a shutdown
 * never waits for a browser tab.
 */
import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { LiveSnapshots } from './live-snapshot.ts';
import { dashboardSnapshotSchema } from './live-schema.ts';

export function registerLiveRoutes(app: FastifyInstance, deps: { snapshots: LiveSnapshots }): void {
  const { snapshots } = deps;
  const streams = new Set<LiveStream>();
  app.addHook('preClose', async () => {
    for (const stream of streams) stream.end();
  });

  app.get('/v1/dashboard', {
    schema: {
      summary: 'The live dashboard\'s snapshot, once',
      description: 'Latest and recent 30-second aggregates per ticker, EMA and volatility per symbol, unique users per minute, records per second per topic and consumer lag. /v1/live streams the same object.',
      tags: ['dashboard'],
      response: { 200: dashboardSnapshotSchema },
    },
  }, async () => snapshots.latest());

  app.get('/v1/live', {
    schema: {
      summary: 'The dashboard snapshot as server-sent events',
      description: `text/event-stream: an event with the /v1/dashboard object as JSON in its data every ${snapshots.intervalMs} ms, with increasing ids.`,
      tags: ['dashboard'],
      produces: ['text/event-stream'],
    },
  }, (request, reply) => {
    reply.hijack();
    const stream = new LiveStream(reply.raw, snapshots, (error) => request.log.warn({ err: error }, 'live snapshot failed'));
    streams.add(stream);
    reply.raw.on('close', () => {
      stream.end();
      streams.delete(stream);
    });
    stream.start();
  });
}

class LiveStream {
  readonly #response: ServerResponse;
  readonly #snapshots: LiveSnapshots;
  readonly #onError: (error: unknown) => void;
  #id = 0;
  #timer: NodeJS.Timeout | null = null;
  #ended = false;

  constructor(response: ServerResponse, snapshots: LiveSnapshots, onError: (error: unknown) => void) {
    this.#response = response;
    this.#snapshots = snapshots;
    this.#onError = onError;
  }

  start(): void {
    this.#response.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no', // proxies must not hold events back
    });
    this.#response.write('retry: 2000\n\n');
    void this.#tick();
  }

  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#response.end();
  }

  async #tick(): Promise<void> {
    try {
      const snapshot = await this.#snapshots.latest();
      // A client that does not keep up skips snapshots instead of buffering them.
      if (!this.#ended && !this.#response.writableNeedDrain) {
        this.#response.write(`id: ${++this.#id}\ndata: ${JSON.stringify(snapshot)}\n\n`);
      }
    } catch (error) {
      this.#onError(error);
    }
    if (!this.#ended) this.#timer = setTimeout(() => void this.#tick(), this.#snapshots.intervalMs);
  }
}
