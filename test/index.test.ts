/**
 * The public API (src/index.ts, `import … from 'tickflow'`): what it exports, and that
 * importing it starts nothing and loads no HTTP stack.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import * as tickflow from 'tickflow';

describe("import 'tickflow'", () => {
  it('exports the runtime, dead letters, log adapters, database, fault policy and core operators', () => {
    const values = [
      'runStreamTask', 'deadLetter', 'tooLarge', 'KafkaLog', 'MemoryLog', 'openDatabase', 'migrate', 'withRetries', 'configureRetries',
      'collectSnapshot', 'TumblingWindows', 'Watermark', 'WindowAggregator', 'RunningStats', 'Ema', 'MovingVolatility', 'HyperLogLog',
      'ExactDistinct', 'TickflowError', 'isTickflowError',
    ];
    for (const name of values) assert.equal(typeof (tickflow as Record<string, unknown>)[name], 'function', name);
  });

  it('starts nothing and loads no HTTP, logging or embedded-database package', () => {
    // A child process: it must exit by itself (no timer, socket or server left) and report what it loaded.
    const script = `
      import { registerHooks } from 'node:module';
      const packages = new Set();
      registerHooks({ resolve(specifier, context, next) {
        const resolved = next(specifier, context);
        const match = resolved.url.match(/node_modules\\/((?:@[^/]+\\/)?[^/]+)/);
        if (match) packages.add(match[1]);
        return resolved;
      } });
      await import('tickflow');
      process.stdout.write(JSON.stringify({ packages: [...packages], resources: process.getActiveResourcesInfo() }));`;
    const out = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 })) as { packages: string[]; resources: string[] };
    assert.deepEqual(out.resources.filter((r) => r !== 'PipeWrap'), [], 'only its own stdio pipes are open');
    const loaded = out.packages.filter((p) => /^(fastify|@fastify\/|pino|@electric-sql\/|playwright)/.test(p));
    assert.deepEqual(loaded, [], `loaded at import: ${out.packages.join(' ')}`);
  });
});
