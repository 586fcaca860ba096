import { readdir } from 'node:fs/promises';
import type { Command } from './command.ts';

const DIR = new URL('./commands/', import.meta.url);

/**
 * Every file in commands/ exports `command`. Discovering them keeps one command per file
 * and lets a new pipeline add its command without touching a central list.
 */
export async function loadCommands(): Promise<Command<unknown>[]> {
  const files = (await readdir(DIR)).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts')).sort();
  const commands: Command<unknown>[] = [];
  for (const file of files) {
    const command = await loadFile(file);
    if (command) commands.push(command);
  }
  return commands.sort((a, b) => a.name.join(' ').localeCompare(b.name.join(' ')));
}

/**
 * The command named by the leading words of argv, loading only its file (a command's
 * file is its words joined by "-": `generate users` → generate-users.ts), so a run does
 * not pay for importing every other command. Null when no file matches; the caller then
 * loads them all (help, unknown commands).
 */
export async function loadCommandFor(argv: readonly string[]): Promise<Command<unknown> | null> {
  const words: string[] = [];
  for (const arg of argv) {
    if (arg.startsWith('-') || !/^[a-z][a-z-]*$/.test(arg) || words.length === 2) break;
    words.push(arg);
  }
  for (let n = words.length; n > 0; n--) {
    const name = words.slice(0, n);
    const command = await loadFile(`${name.join('-')}.ts`).catch(() => null);
    if (command && command.name.length === n && command.name.every((w, i) => w === name[i])) return command;
  }
  return null;
}

async function loadFile(file: string): Promise<Command<unknown> | null> {
  const module = (await import(new URL(file, DIR).href)) as { command?: Command<unknown> };
  return module.command ?? null;
}
