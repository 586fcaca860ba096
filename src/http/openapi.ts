/** The OpenAPI document (GET /docs/json) and the interactive docs page (/docs), built from the route schemas. */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { ApiErrorCodes } from './errors.ts';

export async function registerOpenApi(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'tickflow API',
        version: '1',
        description: [
          'Aggregated stock prices from the `aggregate stocks` pipeline, and the live dashboard (/dashboard) with its data.',
          'Errors always have the body `{"error": {"code", "message", "parameter"?}}`; codes:',
          ...Object.entries(ApiErrorCodes).map(([code, { status, description }]) => `- \`${code}\` (${status}): ${description}`),
        ].join('\n'),
      },
      tags: [{ name: 'prices' }, { name: 'dashboard' }, { name: 'operations' }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
}
