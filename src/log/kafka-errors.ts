import { GenericError, MultipleErrors, ProtocolError, protocolErrors, protocolErrorsCodesById } from '@platformatic/kafka';
import { TickflowError } from '../core/errors.ts';
import { EXPIRED_CERTIFICATE, HOST_MISMATCH, UNTRUSTED_CERTIFICATE } from '../core/tls-codes.ts';

/**
 * The one classification of what the Kafka adapter sees go wrong: errors the client library
 * throws or returns, and raw error codes from our own Produce and Fetch responses. It decides
 * whether waiting (and refreshing metadata) can cure an error; `withRetries` decides how long.
 *
 * It branches on the library's flags (`canRetry`, `hasStaleMetadata`, `needsRejoin`, its error
 * classes) and on its protocol error table, never on message text.
 *
 * - LOG_UNAVAILABLE (retriable): broker lost, connection refused or closed, leader election,
 *   stale leader, coordinator moving, too few in-sync replicas for now, a rebalance.
 *   `details.kafkaCode` names the Kafka code when there is one.
 * - LOG_ERROR (not retriable) with `details.kafkaCode` naming the Kafka code; a record or batch
 *   the broker refuses as too large has `kafkaCode: 'MESSAGE_TOO_LARGE'`, whichever of the two
 *   codes the broker used, so a dead-letter writer can fall back to a reference.
 * - LOG_ERROR with `details.security` for what waiting cannot cure and the operator must fix,
 *   each message saying which (`securityFailure`): an untrusted, expired or wrong-host
 *   certificate (Node's TLS codes), a wrong SASL password (SASL_AUTHENTICATION_FAILED), a
 *   principal without the ACL (*_AUTHORIZATION_FAILED), a plaintext client on a TLS
 *   listener or the reverse.
 * - UNKNOWN_TOPIC only through `unknownTopic()`, once fresh metadata confirmed it: right after
 *   a leader move a broker answers UNKNOWN_TOPIC_OR_PARTITION for a topic that exists. Errors
 *   that may mean a missing topic carry `details.topicMayBeMissing` so the adapter asks.
 */

/** The Kafka protocol error codes tickflow branches on, taken from the library's table. */
export const KafkaCode = codesOf([
  'NONE',
  'OFFSET_OUT_OF_RANGE',
  'CORRUPT_MESSAGE',
  'UNKNOWN_TOPIC_OR_PARTITION',
  'LEADER_NOT_AVAILABLE',
  'NOT_LEADER_OR_FOLLOWER',
  'REQUEST_TIMED_OUT',
  'BROKER_NOT_AVAILABLE',
  'MESSAGE_TOO_LARGE',
  'NETWORK_EXCEPTION',
  'COORDINATOR_LOAD_IN_PROGRESS',
  'COORDINATOR_NOT_AVAILABLE',
  'NOT_COORDINATOR',
  'RECORD_LIST_TOO_LARGE',
  'NOT_ENOUGH_REPLICAS',
  'NOT_ENOUGH_REPLICAS_AFTER_APPEND',
  'ILLEGAL_GENERATION',
  'UNKNOWN_MEMBER_ID',
  'REBALANCE_IN_PROGRESS',
  'TOPIC_ALREADY_EXISTS',
  'NOT_CONTROLLER',
  'OUT_OF_ORDER_SEQUENCE_NUMBER',
  'DUPLICATE_SEQUENCE_NUMBER',
  'INVALID_PRODUCER_EPOCH',
  'UNKNOWN_PRODUCER_ID',
  'MEMBER_ID_REQUIRED',
  'FENCED_LEADER_EPOCH',
  'UNKNOWN_LEADER_EPOCH',
  'OFFSET_NOT_AVAILABLE',
  'UNKNOWN_TOPIC_ID',
  'CONCURRENT_TRANSACTIONS',
  'PRODUCER_FENCED',
  'TRANSACTIONAL_ID_NOT_FOUND',
] as const);

/**
 * Where we differ from the library's `canRetry`, and why:
 * - CORRUPT_MESSAGE: the batch bytes are our own encoder's; resending the same bytes cannot cure them.
 * - BROKER_NOT_AVAILABLE: a broker that went away is exactly what we wait for.
 * - The rejoin codes: the library rejoins the group on them; a retry after that succeeds.
 */
const RETRY_OVERRIDES = new Map<number, boolean>([
  [KafkaCode.CORRUPT_MESSAGE, false],
  [KafkaCode.BROKER_NOT_AVAILABLE, true],
  [KafkaCode.ILLEGAL_GENERATION, true],
  [KafkaCode.UNKNOWN_MEMBER_ID, true],
  [KafkaCode.REBALANCE_IN_PROGRESS, true],
  [KafkaCode.MEMBER_ID_REQUIRED, true],
]);

/** Codes by which a broker refuses a record or a batch for its size. */
const TOO_LARGE = new Set<number>([KafkaCode.MESSAGE_TOO_LARGE, KafkaCode.RECORD_LIST_TOO_LARGE]);
/** Codes a broker gives for a topic it does not know: stale metadata, or really missing. */
const MAYBE_MISSING = new Set<number>([KafkaCode.UNKNOWN_TOPIC_OR_PARTITION, KafkaCode.UNKNOWN_TOPIC_ID]);

/** The library's error class codes we branch on. */
const NETWORK = 'PLT_KFK_NETWORK';
const USER = 'PLT_KFK_USER';

export interface KafkaErrorContext {
  /** What was being done, for the message: "produce to prices", "list topics". */
  action: string;
  topic?: string;
  partition?: number;
  /** The transactional id of a transaction coordinator call, named when the principal may not use it. */
  transactionalId?: string;
  /** Who connects how, for the message of a TLS, SASL or authorization failure. */
  security?: KafkaSecurityContext;
}

export interface KafkaSecurityContext {
  tls: boolean;
  brokers?: readonly string[];
  /** SASL user and mechanism, when SASL is on. */
  user?: string;
  mechanism?: string;
}

/** The name of a Kafka error code ("NOT_LEADER_OR_FOLLOWER"), or "KAFKA_ERROR_<code>" if unknown. */
export function kafkaCodeName(code: number): string {
  return protocolErrorsCodesById[code] ?? `KAFKA_ERROR_${code}`;
}

/** Whether waiting (with fresh metadata) can cure this Kafka error code. */
export function isRetriableCode(code: number): boolean {
  return RETRY_OVERRIDES.get(code) ?? protocolErrors[protocolErrorsCodesById[code]]?.canRetry ?? false;
}

/** A raw error code from a Produce or Fetch response, classified like a library error. */
export function errorForCode(code: number, context: KafkaErrorContext): TickflowError {
  if (protocolErrorsCodesById[code] === undefined) {
    return new TickflowError('LOG_ERROR', `${where(context)}: Kafka error code ${code}`, { ...location(context), kafkaCode: kafkaCodeName(code) });
  }
  return classifyKafkaError(new ProtocolError(code), context);
}

/** Whatever a Kafka call threw, as a TickflowError (a TickflowError is returned as it is). */
export function classifyKafkaError(error: unknown, context: KafkaErrorContext): TickflowError {
  if (error instanceof TickflowError) return error;
  const security = securityFailure(error, context);
  if (security) return security;
  const found: unknown[] = [];
  collectLeaves(error, found, new Set());
  if (found.length === 0) found.push(error);
  // Like the library: retriable only if every error in the chain is.
  const blocking = found.find((leaf) => !isRetriableLeaf(leaf));
  const decisive = blocking ?? found[0];
  const retriable = blocking === undefined;
  if (decisive instanceof TickflowError) return decisive;
  const details: Record<string, unknown> = { ...location(context) };
  const apiCode = codeOf(decisive);
  if (apiCode !== undefined) {
    details.kafkaCode = TOO_LARGE.has(apiCode) ? 'MESSAGE_TOO_LARGE' : kafkaCodeName(apiCode);
    if (MAYBE_MISSING.has(apiCode) && context.topic !== undefined) details.topicMayBeMissing = true;
  } else if (isLibraryError(decisive)) {
    details.libraryCode = decisive.code;
    // The library answers a metadata request for a topic the broker does not know with a
    // plain UserError (after its own retries); only fresh metadata can tell us more.
    if (decisive.code === USER && context.topic !== undefined) details.topicMayBeMissing = true;
  }
  if (found.some((leaf) => (leaf as { hasStaleMetadata?: unknown }).hasStaleMetadata === true)) details.staleMetadata = true;
  return new TickflowError(retriable ? 'LOG_UNAVAILABLE' : 'LOG_ERROR', `${where(context)}: ${describe(decisive)}`, details, { cause: error });
}

/** The topic is missing: only for when fresh metadata says so. */
export function unknownTopic(topic: string, cause?: unknown): TickflowError {
  return new TickflowError('UNKNOWN_TOPIC', `topic ${topic} does not exist (create it first)`, { topic }, cause === undefined ? undefined : { cause });
}

/** True for the error a too-large record or batch ends in (dead-letter it by reference). */
export function isTooLarge(error: unknown): boolean {
  return error instanceof TickflowError && error.details.kafkaCode === 'MESSAGE_TOO_LARGE';
}

/** The library's UserError for a topic a metadata answer did not list (UNKNOWN_TOPIC_OR_PARTITION, after its own retries). */
const UNKNOWN_TOPIC_ANSWER = 'Unknown topic ';

/**
 * An "unknown topic" answer for a topic that fresh metadata lists after all: the answer was
 * older than the topic (created meanwhile, by another process) or came from a broker that
 * had not caught up. The library gives it as a UserError, not retriable; asked again with
 * fresh metadata, the call finds the topic, so it becomes retriable (stale metadata), like
 * the UNKNOWN_TOPIC_OR_PARTITION it stands for. Any other error is returned as it is.
 */
export function topicListedSince(error: TickflowError): TickflowError {
  if (error.retriable) return error;
  const leaves: unknown[] = [];
  collectLeaves(error.cause, leaves, new Set());
  const blocking = leaves.filter((leaf) => !isRetriableLeaf(leaf));
  const unknownTopicOnly = blocking.length > 0 && blocking.every((leaf) => isLibraryError(leaf) && leaf.code === USER && leaf.message.startsWith(UNKNOWN_TOPIC_ANSWER));
  if (!unknownTopicOnly) return error;
  return new TickflowError('LOG_UNAVAILABLE', error.message, { ...error.details, staleMetadata: true }, { cause: error.cause });
}

/** True when the error may mean that the topic does not exist: ask fresh metadata before retrying. */
export function topicMayBeMissing(error: TickflowError): boolean {
  return error.details.topicMayBeMissing === true;
}

function codesOf<const Names extends readonly string[]>(names: Names): { readonly [Name in Names[number]]: number } {
  const codes: Record<string, number> = {};
  for (const name of names) {
    const definition = protocolErrors[name];
    if (!definition) throw new Error(`@platformatic/kafka has no protocol error ${name}`);
    codes[name] = definition.code;
  }
  return Object.freeze(codes) as { readonly [Name in Names[number]]: number };
}

function collectLeaves(error: unknown, out: unknown[], seen: Set<unknown>): void {
  if (!error || typeof error !== 'object' || seen.has(error)) return;
  seen.add(error);
  if (error instanceof MultipleErrors || error instanceof AggregateError) {
    const before = out.length;
    for (const inner of (error as AggregateError).errors) collectLeaves(inner, out, seen);
    if (out.length === before) out.push(error);
    return;
  }
  out.push(error);
}

function isLibraryError(error: unknown): error is GenericError {
  return error instanceof Error && GenericError.isGenericError(error);
}

function codeOf(error: unknown): number | undefined {
  const code = (error as { apiCode?: unknown } | null)?.apiCode;
  return isLibraryError(error) && typeof code === 'number' ? code : undefined;
}

function isRetriableLeaf(leaf: unknown): boolean {
  if (leaf instanceof TickflowError) return leaf.retriable;
  if (!isLibraryError(leaf)) return false; // our own bug or a foreign error: waiting will not help
  const apiCode = codeOf(leaf);
  if (apiCode !== undefined) return isRetriableCode(apiCode);
  if (leaf.code === NETWORK) {
    // NetworkError and TimeoutError. A closed client never reopens; a connection that failed
    // because of TLS or SASL (a non-retriable cause) will fail the same way again.
    if (leaf.canRetry === false || leaf.closed === true) return false;
    const cause = (leaf as { cause?: unknown }).cause;
    return !(isLibraryError(cause) && !isRetriableLeaf(cause));
  }
  return leaf.canRetry === true;
}

function describe(error: unknown): string {
  const apiCode = codeOf(error);
  if (apiCode !== undefined) {
    const server = (error as { serverErrorMessage?: unknown }).serverErrorMessage;
    return `${kafkaCodeName(apiCode)} (Kafka error ${apiCode})${typeof server === 'string' && server ? `: ${server}` : ''}`;
  }
  const message = oneLine((error as Error)?.message ?? String(error));
  const cause = (error as { cause?: unknown })?.cause;
  return cause instanceof Error && cause.message ? `${message} (${oneLine(cause.message)})` : message;
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

function where(context: KafkaErrorContext): string {
  return context.partition === undefined ? context.action : `${context.action} [partition ${context.partition}]`;
}

function location(context: KafkaErrorContext): Record<string, unknown> {
  return { ...(context.topic === undefined ? {} : { topic: context.topic }), ...(context.partition === undefined ? {} : { partition: context.partition }) };
}

// ---------------------------------------------------------------- security

/** Kafka codes of a principal the authorizer refused, and what it was refused. */
const AUTHORIZATION = new Map<number, string>([
  [protocolErrors.TOPIC_AUTHORIZATION_FAILED.code, 'this topic'],
  [protocolErrors.GROUP_AUTHORIZATION_FAILED.code, 'this consumer group'],
  [protocolErrors.CLUSTER_AUTHORIZATION_FAILED.code, 'this cluster operation'],
  [protocolErrors.TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code, 'this transactional id'],
]);
const SASL_FAILED = protocolErrors.SASL_AUTHENTICATION_FAILED.code;
const AUTHENTICATION = 'PLT_KFK_AUTHENTICATION';
/**
 * The library marks a plaintext client on a TLS listener, and a TLS client on a plaintext
 * one, only by these texts of its UserError (network/connection.js).
 */
const PLAINTEXT_ON_TLS = 'Broker requires TLS';
const TLS_ON_PLAINTEXT = 'TLS handshake failed';

/**
 * A TLS, SASL or authorization failure anywhere in the error's chain, as one line that says
 * which and what to do; not retriable (waiting does not cure a wrong password). Undefined
 * for any other error.
 */
export function securityFailure(error: unknown, context: KafkaErrorContext): TickflowError | undefined {
  const chain: unknown[] = [];
  walk(error, chain, new Set());
  const sec = context.security;
  const who = sec?.user ? `user ${sec.user}` : 'this client';
  const make = (kind: string, text: string, extra: Record<string, unknown> = {}): TickflowError =>
    new TickflowError('LOG_ERROR', `${where(context)}: ${text}`, { ...location(context), security: kind, ...extra }, { cause: error });
  const broker = brokerOf(chain, sec);
  // Most specific first: a SASL failure is wrapped in an AuthenticationError, a certificate
  // error in a NetworkError.
  const rules: ((e: unknown) => TickflowError | undefined)[] = [
    (e) => {
      const code = (e as { code?: unknown }).code;
      if (code === HOST_MISMATCH) {
        return make('tls-host', `TLS: the certificate of ${broker} is not for that host name (${oneLine((e as Error).message)}); connect by a name the certificate lists`, { tlsCode: code });
      }
      if (typeof code === 'string' && EXPIRED_CERTIFICATE.has(code)) {
        return make('tls-expired', `TLS: the certificate of ${broker} is expired or not yet valid (${code}); renew it`, { tlsCode: code });
      }
      if (typeof code === 'string' && UNTRUSTED_CERTIFICATE.has(code)) {
        return make('tls-ca', `TLS: the certificate of ${broker} is not signed by a trusted CA (${code}); give the cluster's CA with --kafka-ca or KAFKA_CA_FILE`, { tlsCode: code });
      }
      return undefined;
    },
    (e) =>
      codeOf(e) === SASL_FAILED
        ? make('sasl', `SASL authentication of ${who}${sec?.mechanism ? ` (${sec.mechanism})` : ''} failed at ${broker}: wrong user name or password`, { kafkaCode: 'SASL_AUTHENTICATION_FAILED' })
        : undefined,
    (e) => {
      const apiCode = codeOf(e);
      if (apiCode === undefined || !AUTHORIZATION.has(apiCode)) return undefined;
      const id = context.transactionalId;
      if (apiCode === protocolErrors.TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code && id !== undefined) {
        // Every transaction call needs Write on the id (which implies the Describe that finding its coordinator needs).
        return make('acl', `not authorized: ${who} may not use transactional id ${id} (${kafkaCodeName(apiCode)}); the cluster needs an ACL allowing Write on TransactionalId ${id} or a prefix of it (tickflow acls --print)`, {
          kafkaCode: kafkaCodeName(apiCode),
          transactionalId: id,
        });
      }
      const what = apiCode === protocolErrors.TOPIC_AUTHORIZATION_FAILED.code && context.topic !== undefined ? `topic ${context.topic}` : AUTHORIZATION.get(apiCode);
      return make('acl', `not authorized: ${who} may not use ${what} (${kafkaCodeName(apiCode)}); the cluster needs an ACL for it (tickflow acls --print)`, { kafkaCode: kafkaCodeName(apiCode) });
    },
    (e) =>
      isLibraryError(e) && e.code === USER && e.message.includes(PLAINTEXT_ON_TLS)
        ? make('tls-required', `the listener at ${broker} speaks TLS but this client connects without it; add --kafka-tls (and --kafka-ca)`)
        : undefined,
    (e) =>
      isLibraryError(e) && e.code === USER && e.message.includes(TLS_ON_PLAINTEXT)
        ? make('tls-refused', `TLS handshake with ${broker} failed: the listener does not speak TLS (drop --kafka-tls, or use the broker's TLS port)`)
        : undefined,
    (e) =>
      isLibraryError(e) && e.code === AUTHENTICATION
        ? make('sasl-handshake', `SASL handshake of ${who} with ${broker} failed (${oneLine(e.message)})${sec?.tls ? '' : '; if the listener is SASL_SSL, add --kafka-tls (and --kafka-ca)'}`)
        : undefined,
  ];
  for (const rule of rules) {
    for (const e of chain) {
      const found = rule(e);
      if (found) return found;
    }
  }
  return undefined;
}

/** Every error in the chain: MultipleErrors' members and causes, depth first. */
function walk(error: unknown, out: unknown[], seen: Set<unknown>): void {
  if (!error || typeof error !== 'object' || seen.has(error)) return;
  seen.add(error);
  out.push(error);
  if (error instanceof MultipleErrors || error instanceof AggregateError) for (const inner of (error as AggregateError).errors) walk(inner, out, seen);
  walk((error as { cause?: unknown }).cause, out, seen);
}

/** "host:port" of the connection that failed, from the library's NetworkError, else the bootstrap brokers. */
function brokerOf(chain: unknown[], security: KafkaSecurityContext | undefined): string {
  for (const e of chain) {
    if (isLibraryError(e) && e.code === NETWORK) {
      const m = /Connection to (\S+?) failed/.exec(e.message);
      if (m) return m[1];
    }
    const { host, port } = e as { host?: unknown; port?: unknown };
    if (typeof host === 'string' && typeof port === 'number') return `${host}:${port}`;
  }
  return security?.brokers?.join(',') ?? 'the broker';
}
