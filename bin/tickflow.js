#!/usr/bin/env node
// tickflow runs on Node 24 (the `node` dependency pins it; npm scripts and npx put it first
// on PATH). Started by an older Node, this file hands over to that pinned runtime, passing
// the arguments, the exit code and signals through, or says in one line what to do. So it
// must parse and run on old Nodes: plain JavaScript, Node 24 APIs only behind the check.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const REQUIRED = 24;

if (Number(process.versions.node.split('.')[0]) < REQUIRED) {
  const pinned = fileURLToPath(new URL('../node_modules/node/bin/node', import.meta.url));
  if (!existsSync(pinned) || process.env.TICKFLOW_PINNED_NODE === pinned) {
    process.stderr.write(
      `tickflow: needs Node.js ${REQUIRED} or newer, but ${process.execPath} is ${process.version}; ` +
        'run `npm install` in the tickflow directory (it fetches the pinned Node 24) or put Node 24 first on PATH\n',
    );
    process.exit(1);
  }
  const child = spawn(pinned, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, TICKFLOW_PINNED_NODE: pinned },
  });
  // Ctrl-C in a terminal reaches the whole process group, the child included: forwarding
  // SIGINT too would make it a second Ctrl-C (which forces an exit). Without a terminal, a
  // SIGINT sent to this process is the only one, so it is passed on.
  const forwarded = ['SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR2', ...(process.stdin.isTTY ? [] : ['SIGINT'])];
  for (const signal of forwarded) process.on(signal, () => child.kill(signal));
  if (process.stdin.isTTY) process.on('SIGINT', () => {});
  child.on('error', (error) => {
    process.stderr.write(`tickflow: cannot start ${pinned}: ${error.message}\n`);
    process.exit(1);
  });
  child.on('exit', (code, signal) => {
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    }
    process.exit(code ?? 1);
  });
} else {
  const { setFlagsFromString } = await import('node:v8');
  const { enableCompileCache } = await import('node:module');
  // Fetched and produced bytes live outside the JS heap (socket chunks, batch buffers). By
  // default every 64 MiB of them starts a full collection of the heap — ~45 for a 2 GB topic;
  // counting them in the heap's global limit instead keeps collections as rare as the live
  // heap allows: 10–25% less CPU for consumers and replay, peak RSS ~50 MiB higher and still
  // flat (docs/operations.md).
  setFlagsFromString('--external-memory-accounted-in-global-limit');
  // Compiled code (and stripped types) is cached on disk: start-up drops from ~0.45 s to ~0.25 s.
  enableCompileCache?.();
  // The Kafka client library from its one-module bundle (src/cli/kafka-bundle.ts): ~0.3 s less.
  const { useFastKafkaLibrary } = await import('../src/cli/kafka-bundle.ts');
  await useFastKafkaLibrary();
  // A reader that goes away (`tickflow stats | head`) ends the command quietly, as Unix tools
  // do, instead of an unhandled EPIPE with a stack: nothing is left to write to.
  process.stdout.on('error', (error) => {
    if (error.code === 'EPIPE') process.exit(0);
    throw error;
  });
  const { runCli } = await import('../src/cli/main.ts');
  process.exitCode = await runCli(process.argv.slice(2));
}
