import { builtinModules } from 'node:module';
import tseslint from 'typescript-eslint';

/**
 * The layers, enforced: a pure core; adapters at the edges (only src/log speaks Kafka,
 * only src/db speaks SQL); HTTP reads the database, never a pipeline. Paths are matched
 * as written in the import, so each rule names the folders as seen from its files.
 * scripts/, bench/, test/ and examples/ sit outside the layers.
 */
const kafkaLibrary = { group: ['@platformatic/kafka', '@platformatic/kafka/*'], message: 'only src/log imports the Kafka library: use the Log interface (src/log/types.ts)' };
const sqlDrivers = { group: ['pg', 'pg/*', '@electric-sql/*'], message: 'SQL lives in src/db: use Database/Queryable and a function in src/db' };
const upward = (folders) => ({
  group: folders.flatMap((f) => [`../${f}`, `../${f}/*`, `../../${f}`, `../../${f}/*`]),
  message: 'src/core is the pure layer: it imports only other src/core modules',
});

export default tseslint.config(
  { ignores: ['node_modules/', '.tickflow/', 'infra/kafka/lib/', 'test-artifacts/', 'src/http/public/vendor/'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/core/**', 'src/http/**', 'src/db/**', 'src/log/**'],
    rules: { 'no-restricted-imports': ['error', { patterns: [kafkaLibrary, sqlDrivers] }] },
  },
  {
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: ['node:*', ...builtinModules], message: 'src/core does no I/O: pass what it needs in (time, randomness, bytes)' },
          kafkaLibrary,
          sqlDrivers,
          { group: ['fastify', 'fastify/*', '@fastify/*', 'pino', 'pino/*', 'prom-client'], message: 'src/core does no I/O: logging, metrics and HTTP belong to the adapters' },
          upward(['log', 'db', 'http', 'pipelines', 'runtime', 'cli', 'observability']),
        ],
      }],
    },
  },
  {
    files: ['src/http/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          kafkaLibrary,
          sqlDrivers,
          { group: ['../pipelines', '../pipelines/*', '../../pipelines', '../../pipelines/*'], message: 'src/http reads the database and the log, never a pipeline: move shared logic to src/db or src/observability' },
        ],
      }],
    },
  },
  {
    files: ['src/db/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [kafkaLibrary] }] },
  },
  {
    files: ['src/log/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [sqlDrivers] }] },
  },
);
