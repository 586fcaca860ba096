/**
 * The fast start of the CLI (src/cli/kafka-bundle.ts): validators compiled on first use
 * behave as compiled ones, and the bundle `npm install` writes exports every name the code
 * imports from the library (a name it lacks would fail every command at start).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { bundlePath, lazyAjvCompile } from '../../src/cli/kafka-bundle.ts';
import { BIN } from '../helpers/cli.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** Every value name imported from '@platformatic/kafka' under src/ (type-only imports aside). */
function importedNames(): Set<string> {
  const names = new Set<string>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(file);
      else if (file.endsWith('.ts')) {
        for (const [, list] of readFileSync(file, 'utf8').matchAll(/^import \{([^}]*)\} from '@platformatic\/kafka';/gm)) {
          for (const name of list.split(',').map((n) => n.trim()).filter(Boolean)) if (!name.startsWith('type ')) names.add(name.split(' as ')[0]!);
        }
      }
    }
  };
  walk(path.join(ROOT, 'src'));
  return names;
}

describe('fast start: the Kafka client library', () => {
  it('compiles a validator on its first call, and it answers as the compiled one', () => {
    let compiled = 0;
    const ajv = {
      compile: (schema: unknown) => {
        compiled++;
        const limit = (schema as { max: number }).max;
        const validate = Object.assign((data: unknown) => {
          const ok = typeof data === 'number' && data <= limit;
          validate.errors = ok ? null : [{ message: `must be <= ${limit}` }];
          return ok;
        }, { errors: null as unknown });
        return validate;
      },
    };
    lazyAjvCompile(ajv);
    const validate = ajv.compile({ max: 3 }) as ((data: unknown) => boolean) & { errors: unknown };
    assert.equal(compiled, 0, 'nothing compiled at compile()');
    assert.equal(validate(2), true);
    assert.equal(validate.errors, null);
    assert.equal(validate(5), false);
    assert.deepEqual(validate.errors, [{ message: 'must be <= 3' }]);
    assert.equal(compiled, 1, 'compiled once, on first use');
  });

  it('the bundle written by npm install exports every name the code imports', async (t) => {
    const bundle = bundlePath();
    if (!existsSync(bundle)) {
      // An install with --ignore-scripts: write it as npm install would.
      execFileSync(process.execPath, [path.join(ROOT, 'scripts/kafka-bundle.ts')], { stdio: 'ignore' });
    }
    assert.ok(existsSync(bundle), `${bundle} exists`);
    const exported = await import(pathToFileURL(bundle).href);
    const names = importedNames();
    assert.ok(names.has('Admin') && names.has('fetchV17') && names.size > 15, `found ${names.size} imported names`);
    const missing = [...names].filter((name) => !(name in exported));
    assert.deepEqual(missing, [], 'names the bundle lacks');
    t.diagnostic(`${names.size} names, all exported`);
  });

  it('a command loads the library from the bundle', () => {
    // A loader hook reports every module of the library the CLI loads; the command fails to
    // reach a broker (nothing listens on port 1) after loading the library.
    const hook = `import { registerHooks } from 'node:module'; registerHooks({ load(url, context, next) { if (url.includes('platformatic-kafka-') || url.includes('@platformatic/kafka/dist/')) process.stderr.write('LOADED ' + url + '\\n'); return next(url, context); } });`;
    const run = spawnSync(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(hook)}`, BIN, 'stats', '--brokers', '127.0.0.1:1', '--retry-for', '1s', '--json'], { encoding: 'utf8', timeout: 60_000 });
    const loaded = run.stderr.split('\n').filter((line) => line.startsWith('LOADED ')).map((line) => line.slice(7));
    assert.deepEqual(loaded, [pathToFileURL(bundlePath()).href], `the modules loaded: ${loaded.join(', ')}`);
    assert.notEqual(run.status, 0, 'no broker there');
  });

  it('a command on a plaintext broker never loads node:tls nor the WebAssembly codecs (the bundle requires them on first use)', () => {
    const hook = [
      `import { registerHooks } from 'node:module';`,
      `registerHooks({ load(url, context, next) { if (url.includes('wasm-utils')) process.stderr.write('WASM ' + url + '\\n'); return next(url, context); } });`,
      `process.on('exit', () => process.stderr.write('TLS ' + process.moduleLoadList.includes('NativeModule tls') + '\\n'));`,
    ].join('\n');
    const run = spawnSync(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(hook)}`, BIN, 'stats', '--brokers', '127.0.0.1:1', '--retry-for', '1s', '--json'], { encoding: 'utf8', timeout: 60_000 });
    assert.match(run.stderr, /^TLS false$/m, run.stderr);
    assert.doesNotMatch(run.stderr, /^WASM /m, 'the WebAssembly helpers are not loaded');
    const tls = spawnSync(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(hook)}`, BIN, 'stats', '--brokers', '127.0.0.1:1', '--kafka-tls', '--retry-for', '1s', '--json'], { encoding: 'utf8', timeout: 60_000 });
    assert.match(tls.stderr, /^TLS true$/m, 'a TLS connection loads it');
  });
});
