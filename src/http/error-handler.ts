import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isTickflowError } from '../core/errors.ts';
import { isSchemaMissing } from '../db/db-errors.ts';
import { ApiError, ApiErrorCodes, errorBody } from './errors.ts';
import type { ApiErrorCode } from './errors.ts';

/** Per-route hints for bad parameters, by name: `config: { parameterHints }`. */
export type ParameterHints = Readonly<Record<string, string>>;

declare module 'fastify' {
  interface FastifyContextConfig {
    parameterHints?: ParameterHints;
  }
}

/** Longest URL (path and query) served; longer is a 414. Node's own header limit (16 KiB) gives 431 above it. */
export const MAX_URL_BYTES = 8192;

/** A Fastify or plugin error's status, when it has no code of ours: the catalogue code it maps to. */
const BY_STATUS: Readonly<Record<number, ApiErrorCode>> = {
  403: 'NOT_FOUND', // a static file the docs plugin will not serve: as if it were not there
  404: 'NOT_FOUND',
  408: 'REQUEST_TIMEOUT',
  413: 'PAYLOAD_TOO_LARGE',
  414: 'URI_TOO_LONG',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  431: 'HEADERS_TOO_LARGE',
};

const MESSAGES: Partial<Record<ApiErrorCode, string>> = {
  BAD_REQUEST: 'the request is malformed (an undecodable URL or an unreadable body)',
  NOT_FOUND: 'no such route; see /docs',
  REQUEST_TIMEOUT: 'the request did not arrive in time',
  PAYLOAD_TOO_LARGE: 'the request body is too large (the API reads no bodies)',
  URI_TOO_LONG: `the URL is longer than ${MAX_URL_BYTES} bytes`,
  UNSUPPORTED_MEDIA_TYPE: 'the request body has a content type the API does not read (it reads no bodies)',
  HEADERS_TOO_LARGE: 'the request headers are too large',
  INTERNAL: 'internal error; it has been logged',
  NOT_READY: 'the database is not migrated yet (run tickflow migrate); retry later',
  DATABASE_UNAVAILABLE: 'the database is unavailable; retry later',
  SHUTTING_DOWN: 'the server is shutting down; retry',
};

const messageOf = (code: ApiErrorCode): string => MESSAGES[code] ?? ApiErrorCodes[code].description;

/**
 * What a client may see of a failure: its catalogue code and a fixed message, never the
 * failure's own text. Shared by the error handler and the dashboard's section notes.
 */
export function publicError(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  if (isTickflowError(error, 'DB_UNAVAILABLE') || isTickflowError(error, 'DB_LOST')) return new ApiError('DATABASE_UNAVAILABLE', messageOf('DATABASE_UNAVAILABLE'));
  if (isSchemaMissing(error)) return new ApiError('NOT_READY', messageOf('NOT_READY'));
  const status = (error as FastifyError | null)?.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    const code = BY_STATUS[status] ?? 'BAD_REQUEST';
    return new ApiError(code, messageOf(code));
  }
  return new ApiError('INTERNAL', messageOf('INTERNAL'));
}

/**
 * Maps everything a request can end in onto the error catalogue: schema validation →
 * BAD_PARAMETER naming the parameter; our ApiErrors as they are; an unmigrated database →
 * 503 NOT_READY; an unavailable one → 503 DATABASE_UNAVAILABLE; Fastify's own errors
 * (bad URL, body too large, unknown method on a known path) → their status in the same
 * body; anything else → 500. Details go to the log, never to the client.
 */
export function installErrorHandling(app: FastifyInstance): void {
  const routes = new RouteMethods();
  app.addHook('onRoute', (route) => routes.add(route.method, route.url));

  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onRequest', async (request, reply) => {
    if (closing) {
      reply.header('connection', 'close');
      return send(reply, new ApiError('SHUTTING_DOWN', messageOf('SHUTTING_DOWN')));
    }
    if (Buffer.byteLength(request.url) > MAX_URL_BYTES) return send(reply, new ApiError('URI_TOO_LONG', messageOf('URI_TOO_LONG')));
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error.validation) return send(reply, validationError(error, request));
    const apiError = publicError(error);
    if (apiError.code === 'INTERNAL') request.log.error({ err: error }, 'request failed');
    else if (apiError.status >= 500) request.log.warn({ err: (error as Error).message, code: apiError.code }, 'request failed');
    else if (!(error instanceof ApiError)) request.log.debug({ err: error }, 'bad request');
    return send(reply, apiError);
  });

  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0];
    const allowed = routes.methodsFor(path);
    // A path of another method's route is a 405; a route of this method that found nothing (a static file) a 404.
    if (allowed.length > 0 && !allowed.includes(request.method)) {
      reply.header('allow', allowed.join(', '));
      return send(reply, new ApiError('METHOD_NOT_ALLOWED', `${request.method.slice(0, 16)} is not allowed on ${path.slice(0, 200)}; use ${allowed.join(' or ')}`));
    }
    return send(reply, new ApiError('NOT_FOUND', `no route ${request.method.slice(0, 16)} ${path.slice(0, 200)}; see /docs`));
  });
}

function send(reply: FastifyReply, error: ApiError): FastifyReply {
  return reply.status(error.status).type('application/json; charset=utf-8').send(error.toBody());
}

function validationError(error: FastifyError, request: FastifyRequest): ApiError {
  const first = error.validation![0];
  const params = (first?.params ?? {}) as Record<string, unknown>;
  const parameter = String(params.additionalProperty ?? params.missingProperty ?? first?.instancePath?.replace(/^\//, '').split('/')[0] ?? '') || 'query';
  const hints = request.routeOptions.config.parameterHints ?? {};
  const message = params.additionalProperty !== undefined
    ? `unknown parameter "${parameter}"${Object.keys(hints).length ? ` (expected ${Object.keys(hints).join(', ')})` : ''}`
    : hints[parameter] ?? `${parameter} ${first?.message ?? 'is invalid'}`;
  return new ApiError('BAD_PARAMETER', message, parameter);
}

/** Errors Fastify's router raises before a request has a route (`frameworkErrors`). */
export function frameworkError(error: FastifyError, _request: FastifyRequest, reply: FastifyReply): void {
  const code: ApiErrorCode = error.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'URI_TOO_LONG' : 'BAD_REQUEST';
  void send(reply, new ApiError(code, code === 'BAD_REQUEST' ? 'the URL is not valid (a malformed %-escape?)' : messageOf(code)));
}

/**
 * Requests Node's HTTP parser rejects never reach Fastify (`clientErrorHandler`): headers
 * over the limit → 431, a slow request → 408, anything unparsable → 400, in the same body.
 */
export function clientError(error: NodeJS.ErrnoException, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const code: ApiErrorCode = error.code === 'HPE_HEADER_OVERFLOW' ? 'HEADERS_TOO_LARGE' : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'REQUEST_TIMEOUT' : 'BAD_REQUEST';
  const status = ApiErrorCodes[code].status;
  const body = JSON.stringify(errorBody(code, code === 'BAD_REQUEST' ? 'the request is not valid HTTP' : messageOf(code)));
  if (socket.writable) {
    socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json; charset=utf-8\r\nConnection: close\r\n\r\n${body}`);
  }
  socket.destroy();
}

/** The methods each route path answers, to tell a 405 (known path, other method) from a 404. */
class RouteMethods {
  readonly #exact = new Map<string, Set<string>>();
  readonly #patterns: Array<{ pattern: RegExp; methods: Set<string> }> = [];

  add(method: string | string[], url: string): void {
    const methods = Array.isArray(method) ? method : [method];
    let set: Set<string> | undefined;
    if (/[*:]/.test(url)) {
      const source = url.split(/(\*|:[A-Za-z0-9_]+)/).map((part) => (part === '*' ? '.*' : part.startsWith(':') ? '[^/]+' : part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))).join('');
      set = new Set();
      this.#patterns.push({ pattern: new RegExp(`^${source}$`), methods: set });
    } else {
      set = this.#exact.get(url) ?? new Set();
      this.#exact.set(url, set);
    }
    for (const m of methods) set.add(m.toUpperCase());
  }

  methodsFor(path: string): string[] {
    const found = new Set(this.#exact.get(path) ?? []);
    for (const { pattern, methods } of this.#patterns) if (pattern.test(path)) for (const m of methods) found.add(m);
    return [...found].sort();
  }
}
