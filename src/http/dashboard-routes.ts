/**
 * The dashboard page: GET / redirects to GET /dashboard, which serves a plain HTML page,
 * its ES module and stylesheet (src/http/dashboard/) and uPlot from its npm package. No
 * build step and no request leaves the API's origin. Files are read once at start (a
 * missing file fails the start, not a request) and revalidated by ETag.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

/** Only the API's own origin; uPlot sets styles through the CSSOM, which style-src does not govern. */
const CONTENT_SECURITY_POLICY = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

async function loadAsset(path: string): Promise<Asset> {
  const body = await readFile(path);
  const type = TYPES[path.slice(path.lastIndexOf('.'))] ?? 'application/octet-stream';
  return { body, type, etag: `"${createHash('sha1').update(body).digest('base64url')}"` };
}

export async function registerDashboardRoutes(app: FastifyInstance): Promise<void> {
  const own = (name: string) => fileURLToPath(new URL(`./dashboard/${name}`, import.meta.url));
  const vendor = (name: string) => fileURLToPath(import.meta.resolve(`uplot/dist/${name}`));
  const assets = new Map<string, Asset>([
    ['/dashboard', await loadAsset(own('index.html'))],
    ['/dashboard/dashboard.js', await loadAsset(own('dashboard.js'))],
    ['/dashboard/dashboard.css', await loadAsset(own('dashboard.css'))],
    ['/dashboard/vendor/uPlot.esm.js', await loadAsset(vendor('uPlot.esm.js'))],
    ['/dashboard/vendor/uPlot.min.css', await loadAsset(vendor('uPlot.min.css'))],
  ]);

  app.get('/', { schema: { hide: true } }, async (_request, reply) => reply.redirect('/dashboard', 302));
  app.get('/dashboard/', { schema: { hide: true } }, async (_request, reply) => reply.redirect('/dashboard', 302));

  for (const [url, asset] of assets) {
    app.get(url, { schema: { hide: true } }, async (request, reply) => {
      reply.header('etag', asset.etag).header('cache-control', 'no-cache').header('x-content-type-options', 'nosniff');
      if (asset.type.startsWith('text/html')) reply.header('content-security-policy', CONTENT_SECURITY_POLICY);
      if (request.headers['if-none-match'] === asset.etag) return reply.status(304).send();
      return reply.type(asset.type).send(asset.body);
    });
  }
}
