/**
 * docker-compose.yml, read the way Docker Compose reads it, for tests that cannot run
 * Docker: compose.test.ts checks its shape, and the system tests run each tickflow
 * service's exact command line outside Docker (`tickflowCommands()`).
 *
 * Source, best first: `docker compose config --format json` (Compose v2), then
 * `docker-compose config` (Compose v1), then the file itself parsed with `yaml` and
 * normalised like Compose does (merge keys, ${VAR:-default}, long forms).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';

export const ROOT = path.resolve(import.meta.dirname, '..', '..');
export const COMPOSE_FILE = path.join(ROOT, 'docker-compose.yml');

/** Every service built from the tickflow Dockerfile. */
export const TICKFLOW_SERVICES = [
  'db-migrate',
  'producer',
  'consumer',
  'replayer',
  'data-generator',
  'data-aggregator',
  'data-api',
  'indicators',
  'archive',
  'unique-users',
  'clean-users',
] as const;
export type TickflowService = (typeof TICKFLOW_SERVICES)[number];

/** The jobs that run once and exit (restart: "no"); the rest run until stopped. */
export const ONE_SHOT_SERVICES: readonly TickflowService[] = ['db-migrate', 'producer', 'consumer', 'replayer'];

export interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile?: string };
  command?: string[] | string | null;
  entrypoint?: string[] | string | null;
  environment?: Record<string, string | null>;
  depends_on?: Record<string, { condition: string }>;
  restart?: string;
  profiles?: string[];
  healthcheck?: { test?: string[] | string };
  ports?: unknown[];
  volumes?: unknown[];
  [key: string]: unknown;
}

export interface ComposeConfig {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
}

export type ComposeTool = 'docker compose' | 'docker-compose';

export interface LoadedCompose {
  config: ComposeConfig;
  /** Which reader produced `config`. */
  source: ComposeTool | 'file';
}

/** The Compose CLI on this machine, if any, as argv prefix. */
export function composeTool(): { name: ComposeTool; argv: string[] } | undefined {
  const v2 = spawnSync('docker', ['compose', 'version'], { encoding: 'utf8' });
  if (!v2.error && v2.status === 0) return { name: 'docker compose', argv: ['docker', 'compose'] };
  const v1 = spawnSync('docker-compose', ['version'], { encoding: 'utf8' });
  if (!v1.error && v1.status === 0) return { name: 'docker-compose', argv: ['docker-compose'] };
  return undefined;
}

/** Runs `<compose> -f docker-compose.yml --profile replay --profile secure <args>` in the repo root. */
export function runCompose(args: string[]): { status: number; stdout: string; stderr: string; tool: ComposeTool } | undefined {
  const tool = composeTool();
  if (!tool) return undefined;
  const [cmd, ...pre] = tool.argv;
  const r = spawnSync(cmd, [...pre, '-f', COMPOSE_FILE, '--profile', 'replay', '--profile', 'secure', ...args], { cwd: ROOT, encoding: 'utf8', maxBuffer: 16 << 20 });
  return { status: r.status ?? 1, stdout: r.stdout ?? '', stderr: r.stderr ?? '', tool: tool.name };
}

let cached: LoadedCompose | undefined;

export function loadCompose(): LoadedCompose {
  if (cached) return cached;
  const tool = composeTool();
  if (tool?.name === 'docker compose') {
    const r = runCompose(['config', '--format', 'json']);
    if (r?.status !== 0) throw new Error(`docker compose config failed: ${r?.stderr.trim()}`);
    cached = { config: normalise(JSON.parse(r.stdout)), source: 'docker compose' };
  } else if (tool?.name === 'docker-compose') {
    const r = runCompose(['config']);
    if (r?.status !== 0) throw new Error(`docker-compose config failed: ${r?.stderr.trim()}`);
    cached = { config: normalise(parse(r.stdout)), source: 'docker-compose' };
  } else {
    cached = { config: normalise(interpolate(parse(readFileSync(COMPOSE_FILE, 'utf8'), { merge: true, maxAliasCount: 10_000 }), process.env)), source: 'file' };
  }
  return cached;
}

/** For each tickflow service, the exact tickflow argv its container runs (after the entrypoint). */
export function tickflowCommands(config: ComposeConfig = loadCompose().config): Record<TickflowService, string[]> {
  const result = {} as Record<TickflowService, string[]>;
  for (const name of TICKFLOW_SERVICES) {
    const service = config.services[name];
    if (!service) throw new Error(`docker-compose.yml has no service ${name}`);
    if (!Array.isArray(service.command)) throw new Error(`service ${name}: command must be an array`);
    result[name] = [...service.command];
  }
  return result;
}

/** Each tickflow service's command line, whether it runs once, and its compose environment. */
export function tickflowServiceSpecs(config: ComposeConfig = loadCompose().config): {
  name: TickflowService;
  command: string[];
  oneShot: boolean;
  environment: Record<string, string>;
}[] {
  const commands = tickflowCommands(config);
  return TICKFLOW_SERVICES.map((name) => ({
    name,
    command: commands[name],
    oneShot: ONE_SHOT_SERVICES.includes(name),
    environment: Object.fromEntries(Object.entries(config.services[name].environment ?? {}).map(([k, v]) => [k, v ?? ''])),
  }));
}

// ---------------------------------------------------------------- normalisation

/** Compose's ${VAR}, ${VAR:-default}, ${VAR-default} and $$ in every string. */
function interpolate(value: unknown, env: NodeJS.ProcessEnv): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (m, name, op, def, bare) => {
      if (m === '$$') return '$';
      const key = name ?? bare;
      const v = env[key];
      if (op === ':-') return v ? v : def;
      if (op === '-') return v ?? def;
      return v ?? '';
    });
  }
  if (Array.isArray(value)) return value.map((v) => interpolate(v, env));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, env)]));
  }
  return value;
}

function normalise(raw: unknown): ComposeConfig {
  const doc = raw as { services?: Record<string, Record<string, unknown>>; volumes?: Record<string, unknown> };
  const services: Record<string, ComposeService> = {};
  for (const [name, s] of Object.entries(doc.services ?? {})) {
    const service: ComposeService = { ...s };
    if (typeof s.build === 'string') service.build = { context: s.build };
    if (service.build) {
      const b = service.build as { context?: string; dockerfile?: string };
      service.build = { context: path.resolve(ROOT, b.context ?? '.'), dockerfile: b.dockerfile ?? 'Dockerfile' };
    }
    if (Array.isArray(s.environment)) {
      service.environment = Object.fromEntries(
        (s.environment as string[]).map((e) => {
          const i = e.indexOf('=');
          return i < 0 ? [e, null] : [e.slice(0, i), e.slice(i + 1)];
        }),
      );
    } else if (s.environment && typeof s.environment === 'object') {
      service.environment = Object.fromEntries(Object.entries(s.environment).map(([k, v]) => [k, v === null ? null : String(v)]));
    }
    if (Array.isArray(s.depends_on)) {
      service.depends_on = Object.fromEntries((s.depends_on as string[]).map((d) => [d, { condition: 'service_started' }]));
    }
    if (s.restart !== undefined) service.restart = String(s.restart);
    services[name] = service;
  }
  return { services, volumes: doc.volumes };
}
