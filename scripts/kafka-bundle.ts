/**
 * Writes the Kafka client library as one module for fast start-up (src/cli/kafka-bundle.ts):
 * run by `npm install` (postinstall), or by hand with `node scripts/kafka-bundle.ts`.
 *
 * The bundle holds the library's own code (all of it but the schema registries) and its
 * JavaScript dependencies; its native helpers stay external, and node:tls and its WebAssembly helpers are required on first use. Its option
 * validators compile on first use (the same `lazyAjvCompile` as the unbundled path). A failure
 * here never fails the install: the library then loads from its files, only more slowly.
 */
import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundlePath, libraryEntry } from '../src/cli/kafka-bundle.ts';

const started = performance.now();
const out = bundlePath();
try {
  const { build } = await import('esbuild');
  const lazy = fileURLToPath(new URL('../src/cli/kafka-bundle.ts', import.meta.url));
  mkdirSync(path.dirname(out), { recursive: true });
  const temporary = `${out}.${process.pid}.tmp`;
  // The library's entry without its schema registries (Avro, Protobuf, JSON schema: tickflow
  // uses none): a third less code to load.
  const entry = fileURLToPath(libraryEntry());
  const contents = readFileSync(entry, 'utf8')
    .split('\n')
    .filter((line) => !line.includes('./registries/'))
    .join('\n');
  await build({
    stdin: { contents, resolveDir: path.dirname(entry), sourcefile: 'index.js', loader: 'js' },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node24',
    outfile: temporary,
    // Native and WebAssembly code (and optional codecs) are loaded from their packages.
    external: ['@node-rs/crc32', 'protobufjs', 'snappy', 'lz4-napi', 'kerberos'],
    // The CommonJS dependencies inside call require(): give the module one.
    banner: { js: "import { createRequire as tickflowCreateRequire } from 'node:module'; const require = tickflowCreateRequire(import.meta.url);" },
    minifyWhitespace: true,
    logLevel: 'error',
    plugins: [
      {
        // The library imports only `connect` from node:tls, for TLS connections. Importing the
        // module costs ~15 ms at start-up (ESM reads every export, the root certificates too):
        // required on the first TLS connection instead.
        name: 'lazy-tls',
        setup(builder) {
          builder.onResolve({ filter: /^node:tls$/ }, () => ({ path: 'node:tls', namespace: 'tickflow-lazy-tls' }));
          builder.onLoad({ filter: /.*/, namespace: 'tickflow-lazy-tls' }, () => ({
            contents: "import { createRequire } from 'node:module';\nconst load = createRequire(import.meta.url);\nexport function connect(...args) { return load('node:tls').connect(...args); }\n",
            loader: 'js',
          }));
        },
      },
      {
        // The library's WebAssembly helpers (snappy and lz4 codecs, a CRC-32C fallback) compile
        // their module when imported (~12 ms): loaded on first use instead (require of an ES
        // module), which a stream without those codecs never reaches.
        name: 'lazy-wasm-utils',
        setup(builder) {
          const names = ['crc32c', 'lz4Compress', 'lz4Decompress', 'snappyCompress', 'snappyDecompress'];
          builder.onResolve({ filter: /^@platformatic\/wasm-utils$/ }, () => ({ path: 'wasm-utils', namespace: 'tickflow-lazy-wasm' }));
          builder.onLoad({ filter: /.*/, namespace: 'tickflow-lazy-wasm' }, () => ({
            contents: [
              "import { createRequire } from 'node:module';",
              'const load = createRequire(import.meta.url);',
              'let loaded;',
              "const utils = () => (loaded ??= load('@platformatic/wasm-utils'));",
              ...names.map((name) => `export function ${name}(...args) { return utils().${name}(...args); }`),
            ].join('\n'),
            loader: 'js',
          }));
        },
      },
      {
        name: 'lazy-validators',
        setup(builder) {
          // The library's shared Ajv instance lives in dist/utils.js: compile on first use.
          builder.onLoad({ filter: /[\\/]@platformatic[\\/]kafka[\\/]dist[\\/]utils\.js$/ }, (args) => ({
            contents: `${readFileSync(args.path, 'utf8')}\nimport { lazyAjvCompile as tickflowLazyAjvCompile } from ${JSON.stringify(lazy)};\ntickflowLazyAjvCompile(ajv);\n`,
            loader: 'js',
            resolveDir: path.dirname(args.path),
          }));
        },
      },
    ],
  });
  renameSync(temporary, out);
  // Bundles of other library versions or recipes are never used again.
  for (const name of readdirSync(path.dirname(out))) {
    if (name.startsWith('platformatic-kafka-') && name !== path.basename(out)) rmSync(path.join(path.dirname(out), name), { force: true });
  }
  console.log(`tickflow: Kafka client library bundled for fast start-up in ${((performance.now() - started) / 1000).toFixed(1)} s (${path.relative(process.cwd(), out)})`);
} catch (error) {
  console.warn(`tickflow: could not bundle the Kafka client library (start-up will be slower): ${(error as Error).message}`);
}
