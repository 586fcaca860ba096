import { existsSync, readFileSync } from 'node:fs';
import { registerHooks } from 'node:module';
import { fileURLToPath } from 'node:url';

/**
 * Start-up of a tickflow process on Kafka (docs/operations.md, "Start-up").
 *
 * The Kafka client library is 330 ES modules (one per protocol API) and compiles about 40
 * JSON-schema validators for its options when it is imported. Both are most of what a short
 * command like `stats` spends before its first fetch: ~0.55 s of a 0.75 s run over an empty
 * topic. Two remedies, both invisible to the code that imports the library:
 *
 * - Its validators are compiled on first use instead of at import. The library validates
 *   options only in its `strict` mode (off in tickflow) and a consumer's group options, so
 *   most are never compiled at all. Every validator behaves as before when called.
 * - `npm install` writes the library as one bundled module (scripts/kafka-bundle.ts, esbuild)
 *   under node_modules/.cache, named by the library's version; the CLI entry resolves
 *   `@platformatic/kafka` to it. Without a bundle of the installed version (an install that
 *   skipped scripts), the library loads from its own files, with lazy validators too.
 */

/** Bumped when the bundle recipe changes, so an older bundle is not used. */
const RECIPE = 4;

interface Ajv {
  compile: (schema: unknown) => (data: unknown) => boolean;
}

/** Makes `ajv.compile` return a validator that compiles the schema when first called. */
export function lazyAjvCompile(ajv: Ajv): void {
  const compile = ajv.compile.bind(ajv);
  ajv.compile = (schema) => {
    let validate: ((data: unknown) => boolean) & { errors?: unknown };
    const lazy = (data: unknown): boolean => {
      validate ??= compile(schema);
      const valid = validate(data);
      lazy.errors = validate.errors;
      return valid;
    };
    lazy.errors = null as unknown;
    return lazy;
  };
}

/** The library's entry module (dist/index.js). */
export function libraryEntry(): URL {
  return new URL(import.meta.resolve('@platformatic/kafka'));
}

/** Where the bundle of the installed library version lives. */
export function bundlePath(): string {
  const entry = libraryEntry();
  const { version } = JSON.parse(readFileSync(new URL('../package.json', entry), 'utf8')) as { version: string };
  return fileURLToPath(new URL(`../../../.cache/tickflow/platformatic-kafka-${version}-r${RECIPE}.mjs`, entry));
}

/**
 * Makes this process load the Kafka client library fast: from its bundle when one was built
 * for the installed version, else from its files with validators compiled on first use.
 * Called once by the CLI entry before anything imports the library.
 */
export async function useFastKafkaLibrary(): Promise<void> {
  const bundle = bundlePath();
  if (existsSync(bundle)) {
    const url = new URL(`file://${bundle}`).href;
    registerHooks({
      resolve: (specifier, context, next) => (specifier === '@platformatic/kafka' ? { url, format: 'module', shortCircuit: true } : next(specifier, context)),
    });
    return;
  }
  const utils = (await import(new URL('./utils.js', libraryEntry()).href)) as { ajv: Ajv };
  lazyAjvCompile(utils.ajv);
}
