/**
 * What each tickflow service may do on a secured Kafka cluster: one principal per service,
 * allowed to read its inputs, write its outputs and use its consumer group, and nothing
 * else (no topic creation, no access to another service's topics or groups). Topics are
 * created by the admin beforehand (`tickflow topics --create` or `npm run infra:up -- --secure`).
 *
 * This table is the one source: `tickflow acls --print` prints it, the secured local cluster
 * (scripts/infra-secure.ts) creates exactly these bindings, the compose profile `secure`
 * runs them (infra/compose-secure/kafka-init.sh, the output of `aclCommands`),
 * docs/operations.md shows them. Read implies Describe, and Write implies Describe, in
 * Kafka's authorizer; the idempotent producer needs Write on some topic (Kafka 3+), not
 * IdempotentWrite on the cluster.
 *
 * Transactions: a transactional producer needs Write on its transactional id (which implies
 * the Describe that finding its coordinator needs) besides Write on the topics, and, to
 * commit consumed offsets in the transaction, Read on the group. Each service that writes in
 * transactions gets the prefix of the ids it uses: `tickflow-<pipeline>-` for the exactly-once
 * pipelines (KafkaTransactionCommitter.transactionalId: tickflow-<pipeline>-<group>-<topic>-
 * <partitions>) and `tickflow-<command>-` for the producers' --transactional (default id
 * tickflow-<command>-<output topic>). A producer run with another --transactional-id needs
 * its own binding.
 */

export interface ServiceAcl {
  /** The command this principal runs. */
  service: string;
  /** SASL user name (the Kafka principal is User:<name>). */
  principal: string;
  /** Topics it consumes (Read). */
  reads: readonly string[];
  /** Topics it produces to (Write). */
  writes: readonly string[];
  /** Topics whose offsets and size it only looks at (Describe). "*" for all. */
  describes?: readonly string[];
  /** Consumer groups it uses (Read); a name ending in '*' is a prefix. */
  groups: readonly string[];
  /** Groups it only looks at (Describe). "*" for all. */
  describesGroups?: readonly string[];
  /** Transactional ids it writes transactions under (Write); a name ending in '*' is a prefix. */
  transactionalIds?: readonly string[];
  /** Transactional ids whose transactions it only looks at (Describe). "*" for all. */
  describesTransactionalIds?: readonly string[];
}

export const SERVICE_ACLS: readonly ServiceAcl[] = [
  { service: 'produce prices', principal: 'tf-produce-prices', reads: [], writes: ['prices'], groups: [], transactionalIds: ['tickflow-produce-prices-*'] },
  { service: 'generate stocks', principal: 'tf-generate-stocks', reads: [], writes: ['stocks'], groups: [], transactionalIds: ['tickflow-generate-stocks-*'] },
  { service: 'replay', principal: 'tf-replay', reads: [], writes: ['user-tracker', 'users'], groups: [], transactionalIds: ['tickflow-replay-*'] },
  { service: 'stats', principal: 'tf-stats', reads: ['prices'], writes: [], groups: [] },
  { service: 'aggregate stocks', principal: 'tf-aggregate-stocks', reads: ['stocks'], writes: ['stocks-dlq'], groups: ['stocks-aggregator'] },
  { service: 'indicators', principal: 'tf-indicators', reads: ['prices'], writes: ['volatility', 'prices-dlq'], groups: ['tickflow-indicators'], transactionalIds: ['tickflow-indicators-*'] },
  { service: 'archive', principal: 'tf-archive', reads: ['prices', 'stocks'], writes: ['prices-dlq', 'stocks-dlq'], groups: ['tickflow-archive-*'] },
  { service: 'unique-users', principal: 'tf-unique-users', reads: ['user-tracker'], writes: ['unique-users', 'user-tracker-late', 'user-tracker-dlq'], groups: ['unique-users'], transactionalIds: ['tickflow-unique-users-*'] },
  { service: 'clean-users', principal: 'tf-clean-users', reads: ['users'], writes: ['users-clean', 'users-stats', 'users-dlq'], groups: ['clean-users'], transactionalIds: ['tickflow-clean-users-*'] },
  { service: 'monitor', principal: 'tf-monitor', reads: ['user-tracker-late', 'users-dlq'], writes: [], describes: ['*'], groups: [], describesGroups: ['*'], describesTransactionalIds: ['*'] },
  { service: 'api', principal: 'tf-api', reads: ['unique-users'], writes: [], describes: ['*'], groups: [] },
];

/** The topics the table names, for the admin to create before the services start. */
export function aclTopics(table: readonly ServiceAcl[] = SERVICE_ACLS): string[] {
  return [...new Set(table.flatMap((s) => [...s.reads, ...s.writes]))].sort();
}

export type AclResource = 'topic' | 'group' | 'transactional-id';
export type AclOperation = 'Read' | 'Write' | 'Describe';

/** One ALLOW binding, as Kafka's authorizer stores it. */
export interface AclBinding {
  principal: string;
  resource: AclResource;
  /** Literal name, or a prefix when `prefixed`; "*" is Kafka's wildcard. */
  name: string;
  prefixed: boolean;
  operation: AclOperation;
}

export function aclBindings(table: readonly ServiceAcl[] = SERVICE_ACLS): AclBinding[] {
  const out: AclBinding[] = [];
  const add = (s: ServiceAcl, resource: AclResource, names: readonly string[] | undefined, operation: AclOperation): void => {
    for (const raw of names ?? []) {
      const prefixed = raw.length > 1 && raw.endsWith('*');
      out.push({ principal: `User:${s.principal}`, resource, name: prefixed ? raw.slice(0, -1) : raw, prefixed, operation });
    }
  };
  for (const s of table) {
    add(s, 'topic', s.reads, 'Read');
    add(s, 'topic', s.writes, 'Write');
    add(s, 'topic', s.describes, 'Describe');
    add(s, 'group', s.groups, 'Read');
    add(s, 'group', s.describesGroups, 'Describe');
    add(s, 'transactional-id', s.transactionalIds, 'Write');
    add(s, 'transactional-id', s.describesTransactionalIds, 'Describe');
  }
  return out;
}

/** The table as aligned text, one service a line. */
export function formatAclTable(table: readonly ServiceAcl[] = SERVICE_ACLS): string {
  const list = (xs: readonly string[] | undefined): string => (xs && xs.length > 0 ? xs.join(', ') : '-');
  const rows = [
    ['SERVICE', 'PRINCIPAL', 'READ TOPICS', 'WRITE TOPICS', 'DESCRIBE TOPICS', 'GROUPS (READ)', 'DESCRIBE GROUPS', 'TRANSACTIONAL IDS (WRITE)', 'DESCRIBE TRANSACTIONAL IDS'],
    ...table.map((s) => [
      s.service,
      `User:${s.principal}`,
      list(s.reads),
      list(s.writes),
      list(s.describes),
      list(s.groups),
      list(s.describesGroups),
      list(s.transactionalIds),
      list(s.describesTransactionalIds),
    ]),
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return `${rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n')}\n`;
}

/** The bindings as `kafka-acls.sh` commands an operator can run against a real cluster. */
export function aclCommands(bootstrap = 'BROKER:9093', commandConfig = 'admin.properties', table: readonly ServiceAcl[] = SERVICE_ACLS): string {
  const lines = aclBindings(table).map((b) => {
    const resource = `--${b.resource} '${b.name}'`; // --topic, --group, --transactional-id
    const pattern = b.prefixed ? ' --resource-pattern-type prefixed' : '';
    return `kafka-acls.sh --bootstrap-server ${bootstrap} --command-config ${commandConfig} --add --allow-principal ${b.principal} --operation ${b.operation} ${resource}${pattern}`;
  });
  return `${lines.join('\n')}\n`;
}
