/**
 * `npm run bench -- <name> [args]` runs bench/<name>.ts, which exports `default async
 * function (args: string[])` and prints its table. Without a name, lists the benchmarks.
 */
import { readdir } from 'node:fs/promises';

const [name, ...args] = process.argv.slice(2);
const available = (await readdir(new URL('.', import.meta.url))).filter((f) => f.endsWith('.ts') && !['run.ts'].includes(f) && !f.startsWith('_')).map((f) => f.replace(/\.ts$/, ''));
if (!name || !available.includes(name)) {
  console.error(`usage: npm run bench -- <${available.join('|')}> [args]`);
  process.exit(name ? 2 : 0);
}
const module = (await import(`./${name}.ts`)) as { default: (args: string[]) => Promise<void> };
await module.default(args);
