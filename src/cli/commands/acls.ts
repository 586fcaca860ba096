import { SERVICE_ACLS, aclBindings, aclCommands, aclTopics, formatAclTable } from '../../log/acls.ts';
import { badFlag, bool, str } from '../flags.ts';
import { defineCommand } from '../command.ts';

export const command = defineCommand({
  name: ['acls'],
  summary: 'Print the Kafka ACLs each tickflow service needs on a secured cluster (one principal per service)',
  description: [
    'Each service may read its inputs, write its outputs and use its consumer group, and nothing else;',
    'an admin creates the topics first. The same table makes the ACLs of `npm run infra:up -- --secure`',
    '(docs/operations.md). --print shows it as a table, --commands as kafka-acls.sh lines, --json as bindings.',
  ].join('\n'),
  flags: {
    print: { type: 'boolean', description: 'Print the table (the default)' },
    commands: { type: 'boolean', description: 'Print kafka-acls.sh --add commands instead' },
    'bootstrap-server': { type: 'string', value: 'HOST:PORT', default: 'BROKER:9093', description: 'Broker named in --commands' },
    'command-config': { type: 'string', value: 'FILE', default: 'admin.properties', description: 'Admin client properties named in --commands' },
  },
  examples: ['tickflow acls --print', 'tickflow acls --commands --bootstrap-server kafka-1.internal:9093', 'tickflow acls --json'],
  configure: (values) => {
    if (bool(values, 'print') && bool(values, 'commands')) throw badFlag('commands', 'cannot be combined with --print');
    return { commands: bool(values, 'commands'), bootstrap: str(values, 'bootstrap-server') ?? 'BROKER:9093', commandConfig: str(values, 'command-config') ?? 'admin.properties' };
  },
  async run({ config, shared, out }) {
    if (shared.json) out.write(`${JSON.stringify({ services: SERVICE_ACLS, topics: aclTopics(), bindings: aclBindings() })}\n`);
    else if (config.commands) out.write(aclCommands(config.bootstrap, config.commandConfig));
    else out.write(formatAclTable());
  },
});
