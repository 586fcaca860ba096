import { readdir } from 'node:fs/promises';
import type { Command } from './command.ts';

/**
 * Every file in commands/ exports `command`. Discovering them keeps one command per file
 * and lets a new pipeline add its command without touching a central list.
 */
export async function loadCommands(): Promise<Command<unknown>[]> {
  const dir = new URL('./commands/', import.meta.url);
  const files = (await readdir(dir)).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts')).sort();
  const commands: Command<unknown>[] = [];
  for (const file of files) {
    const module = (await import(new URL(file, dir).href)) as { command?: Command<unknown> };
    if (module.command) commands.push(module.command);
  }
  return commands.sort((a, b) => a.name.join(' ').localeCompare(b.name.join(' ')));
}
