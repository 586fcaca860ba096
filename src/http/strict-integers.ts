/**
 * Integer query parameters are read strictly: decimal digits only. Ajv's type coercion
 * (which the querystring schemas rely on) would read `0x10`, `1e1`, ` 16` and `16.0` as
 * numbers; this hook runs before it and turns them into a 400 naming the parameter.
 */
import type { FastifyInstance } from 'fastify';
import { ApiError } from './errors.ts';

const DECIMAL = /^-?(0|[1-9][0-9]*)$/;

interface QuerySchema {
  properties?: Record<string, { type?: unknown }>;
}

export function installStrictIntegers(app: FastifyInstance): void {
  app.addHook('preValidation', async (request) => {
    const properties = (request.routeOptions.schema?.querystring as QuerySchema | undefined)?.properties;
    if (!properties) return;
    const query = (request.query ?? {}) as Record<string, unknown>;
    for (const [name, property] of Object.entries(properties)) {
      const raw = query[name];
      if (property.type !== 'integer' || raw === undefined) continue;
      if (typeof raw === 'string' && DECIMAL.test(raw)) continue;
      const hint = request.routeOptions.config.parameterHints?.[name] ?? `${name} must be an integer`;
      const got = Array.isArray(raw) ? 'it was given more than once' : `got "${String(raw).slice(0, 40)}"`;
      throw new ApiError('BAD_PARAMETER', `${hint} in decimal digits; ${got}`, name);
    }
  });
}
