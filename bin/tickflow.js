#!/usr/bin/env node
// npm puts the project's pinned Node 24 first on PATH for npx and npm scripts.
import { runCli } from '../src/cli/main.ts';

process.exitCode = await runCli(process.argv.slice(2));
