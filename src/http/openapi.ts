/** The OpenAPI document (GET /docs/json) and the interactive docs page (/docs), built from the route schemas. */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { ApiErrorCodes } from './errors.ts';

const ERROR_RESPONSE = { $ref: 'ApiError#' } as const;

export async function registerOpenApi(app: FastifyInstance): Promise<void> {
  // Every documented route answers its errors in the one envelope: say so in its responses.
  app.addHook('onRoute', (route) => {
    const schema = route.schema as { hide?: boolean; response?: Record<string, unknown> } | undefined;
    if (!schema || schema.hide) return;
    schema.response = { '4XX': ERROR_RESPONSE, '5XX': ERROR_RESPONSE, ...schema.response };
  });
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'tickflow API',
        version: '1',
        description: [
          'Aggregated stock prices from the `aggregate stocks` pipeline, distinct users of any range from per-minute sketches kept in PostgreSQL,',
          'and the live dashboard (/dashboard) with its data.',
          'Errors, whatever their status, always have the body `{"error": {"code", "message", "parameter"?}}` (schema `ApiError`);',
          'a 405 also names the allowed methods in its `Allow` header. Messages never carry internal detail. Codes:',
          ...Object.entries(ApiErrorCodes).map(([code, { status, description }]) => `- \`${code}\` (${status}): ${description}`),
        ].join('\n'),
      },
      tags: [{ name: 'prices' }, { name: 'users' }, { name: 'dashboard' }, { name: 'operations' }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
}
