/**
 * The HTTP API as a Fastify instance, built but not listening: the `api` command calls
 * `listen`, tests call `inject`. Query-string schemas are strict (unknown parameters are
 * a 400, nothing is silently dropped, integers are decimal digits) and every error, Fastify's
 * and Node's own included, leaves through the catalogue in one envelope.
 */
import Fastify, { LogController } from 'fastify';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { Queryable } from '../db/types.ts';
import type { Log } from '../log/types.ts';
import { registerDashboardRoutes } from './dashboard-routes.ts';
import { clientError, frameworkError, installErrorHandling } from './error-handler.ts';
import { errorBodySchema } from './errors.ts';
import { registerHealthRoutes } from './health-routes.ts';
import { KnownTickers } from './known-tickers.ts';
import { LiveSnapshots } from './live-snapshot.ts';
import type { DashboardOptions } from './live-snapshot.ts';
import { registerLiveRoutes } from './live-routes.ts';
import { registerMetricsRoute } from './metrics-route.ts';
import { registerOpenApi } from './openapi.ts';
import { registerPricesRoute } from './prices-route.ts';
import { installStrictIntegers } from './strict-integers.ts';
import { registerUniqueUsersRoute } from './unique-users-route.ts';

export interface ApiOptions {
  /** Where reads go: ideally a connection whose role can only read. */
  db: Queryable;
  /** A pino logger; default: no request logging. */
  logger?: FastifyBaseLogger;
  tickerCacheMs?: number;
  /** The log the dashboard reads throughput, lag and unique users from; without it those panels stay empty. */
  log?: Log;
  dashboard?: DashboardOptions;
}

export async function buildApp(options: ApiOptions): Promise<FastifyInstance> {
  const app = Fastify({
    ...(options.logger ? { loggerInstance: options.logger } : { logger: false }),
    logController: new LogController({ disableRequestLogging: true }),
    ajv: { customOptions: { removeAdditional: false, coerceTypes: true, useDefaults: true, allErrors: false } },
    // Fastify's own 503 while closing, bad-URL and client-error bodies are not ours: installErrorHandling answers them.
    return503OnClosing: false,
    frameworkErrors: frameworkError,
    clientErrorHandler: clientError,
  }) as unknown as FastifyInstance;
  app.addSchema(errorBodySchema);
  installErrorHandling(app);
  installStrictIntegers(app);
  await registerOpenApi(app);
  registerMetricsRoute(app);
  registerHealthRoutes(app, { db: options.db });
  registerPricesRoute(app, { db: options.db, tickers: new KnownTickers(options.db, { ttlMs: options.tickerCacheMs }) });
  registerUniqueUsersRoute(app, { db: options.db });
  registerLiveRoutes(app, { snapshots: new LiveSnapshots({ db: options.db, log: options.log, logger: options.logger, options: options.dashboard }) });
  await registerDashboardRoutes(app);
  return app;
}
