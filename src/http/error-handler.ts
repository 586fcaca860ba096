import type { FastifyError, FastifyInstance } from 'fastify';
import { isTickflowError } from '../core/errors.ts';
import { ApiError } from './errors.ts';

/** Per-route hints for bad parameters, by name: `config: { parameterHints }`. */
export type ParameterHints = Readonly<Record<string, string>>;

declare module 'fastify' {
  interface FastifyContextConfig {
    parameterHints?: ParameterHints;
  }
}

/**
 * Maps everything a request can throw onto the error catalogue: schema validation →
 * BAD_PARAMETER naming the parameter; our ApiErrors as they are; an unavailable
 * database → 503; anything else → 500, logged, without internals in the body.
 */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    let apiError: ApiError;
    if (error instanceof ApiError) {
      apiError = error;
    } else if (error.validation) {
      const first = error.validation[0];
      const params = (first?.params ?? {}) as Record<string, unknown>;
      const parameter = String(params.additionalProperty ?? params.missingProperty ?? first?.instancePath?.replace(/^\//, '').split('/')[0] ?? '') || 'query';
      const hints = request.routeOptions.config.parameterHints ?? {};
      const message = params.additionalProperty !== undefined
        ? `unknown parameter "${parameter}"${Object.keys(hints).length ? ` (expected ${Object.keys(hints).join(', ')})` : ''}`
        : hints[parameter] ?? `${parameter} ${first?.message ?? 'is invalid'}`;
      apiError = new ApiError('BAD_PARAMETER', message, parameter);
    } else if (isTickflowError(error, 'DB_UNAVAILABLE')) {
      request.log.warn({ err: error.message }, 'database unavailable');
      apiError = new ApiError('DATABASE_UNAVAILABLE', 'the database is unavailable; retry later');
    } else if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
      // Fastify's own 4xx (a malformed URL, a body where none belongs): keep the status, catalogue the body.
      apiError = new ApiError('BAD_PARAMETER', error.message);
      return reply.status(error.statusCode).send(apiError.toBody());
    } else {
      request.log.error({ err: error }, 'request failed');
      apiError = new ApiError('INTERNAL', 'internal error; it has been logged');
    }
    return reply.status(apiError.status).send(apiError.toBody());
  });
  app.setNotFoundHandler((request, reply) => {
    const error = new ApiError('NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}; see /docs`);
    return reply.status(404).send(error.toBody());
  });
}
