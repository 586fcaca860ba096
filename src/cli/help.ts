import type { Command, FlagSpec } from './command.ts';
import { SHARED_FLAGS } from './config.ts';

function flagLines(flags: Record<string, FlagSpec>): string[] {
  const rows = Object.entries(flags).filter(([, spec]) => !spec.aliasOf).map(([name, spec]) => {
    const left = `${spec.short ? `-${spec.short}, ` : '    '}--${name}${spec.type === 'string' ? ` ${spec.value ?? 'VALUE'}` : ''}`;
    const extras = [spec.default !== undefined && spec.default !== false ? `default ${spec.default}` : '', spec.env ? `env ${spec.env}` : '']
      .filter(Boolean)
      .join(', ');
    return [left, `${spec.description}${extras ? ` (${extras})` : ''}`];
  });
  const width = Math.min(36, Math.max(...rows.map(([l]) => l.length)) + 2);
  return rows.map(([l, r]) => `  ${l.padEnd(width)}${r}`);
}

export function commandHelp(command: Command<unknown>): string {
  const name = command.name.join(' ');
  const positional = command.positionals ? ` ${command.positionals.required ? command.positionals.name : `[${command.positionals.name}]`}` : '';
  const lines = [`Usage: tickflow ${name}${positional} [flags]`, '', command.summary];
  if (command.description) lines.push('', command.description);
  if (command.positionals) lines.push('', 'Arguments:', `  ${command.positionals.name.padEnd(12)}${command.positionals.description}`);
  if (Object.keys(command.flags).length > 0) lines.push('', 'Flags:', ...flagLines({ ...command.flags }));
  lines.push('', 'Shared flags:', ...flagLines(SHARED_FLAGS));
  if (command.examples.length > 0) lines.push('', 'Examples:', ...command.examples.map((e) => `  ${e}`));
  return `${lines.join('\n')}\n`;
}

export function overviewHelp(commands: readonly Command<unknown>[]): string {
  const width = Math.max(...commands.map((c) => c.name.join(' ').length), 8) + 3;
  return [
    'tickflow — stream market ticks and user activity through Kafka into PostgreSQL',
    '',
    'Usage: tickflow <command> [flags]',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.join(' ').padEnd(width)}${c.summary}`),
    '',
    'Kafka: --brokers host:port (or KAFKA_BROKERS); without it, the embedded in-process log.',
    'PostgreSQL: --database-url URL (or DATABASE_URL); without it, embedded PGlite in .tickflow/.',
    'Run `tickflow <command> --help` for its flags; every command speaks one vocabulary (docs/cli.md):',
    '--input/--output topics (- for stdin/stdout), --dead-letter-topic (<input>-dlq), --until-end, --idle-timeout.',
    '',
  ].join('\n');
}
