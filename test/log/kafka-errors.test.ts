import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AuthenticationError, MultipleErrors, NetworkError, ProtocolError, ResponseError, TimeoutError, UserError, protocolErrors } from '@platformatic/kafka';
import { TickflowError } from '../../src/core/errors.ts';
import { KafkaCode, classifyKafkaError, errorForCode, isRetriableCode, isTooLarge, kafkaCodeName, topicListedSince, topicMayBeMissing } from '../../src/log/kafka-errors.ts';

/**
 * The classification is fed the client library's own error objects, built the way the
 * library builds them (see its network/connection.js, clients/base/base.js), so a change
 * in the library's flags shows up here.
 */

const PRODUCE_API = 0;
const context = { action: 'produce to prices', topic: 'prices' };

const refused = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9094'), { code: 'ECONNREFUSED' });
const response = (...codes: number[]) =>
  new ResponseError(PRODUCE_API, 11, Object.fromEntries(codes.map((code, i) => [`/responses/0/partitionResponses/${i}`, [code, null]])), { responses: [] });

describe('classifyKafkaError', () => {
  const cases: Array<{ name: string; error: unknown; code: TickflowError['code']; kafkaCode?: string; stale?: boolean }> = [
    { name: 'a refused connection (broker killed)', error: new NetworkError('Connection to 127.0.0.1:9094 failed.', { cause: refused() }), code: 'LOG_UNAVAILABLE' },
    { name: 'a connection closed under a request', error: new NetworkError('Connection closed'), code: 'LOG_UNAVAILABLE' },
    { name: 'the admin "Listing offsets failed." wrapper', error: new MultipleErrors('Listing offsets failed.', [new NetworkError('Connection to 127.0.0.1:9094 failed.', { cause: refused() })]), code: 'LOG_UNAVAILABLE' },
    { name: 'a request timeout', error: new TimeoutError('Request timed out', { canRetry: true }), code: 'LOG_UNAVAILABLE' },
    {
      name: 'a leader missing from the cached metadata',
      error: new NetworkError('Cannot get a connection: the broker is not available in the current cluster metadata.', { canRetry: true, hasStaleMetadata: true }),
      code: 'LOG_UNAVAILABLE',
      stale: true,
    },
    { name: 'a closed client', error: new NetworkError('Client is closed.', { canRetry: false, closed: true }), code: 'LOG_ERROR' },
    { name: 'a connection refused by SASL', error: new NetworkError('Connection to b:9092 failed.', { cause: new AuthenticationError('SASL authentication failed.') }), code: 'LOG_ERROR' },
    { name: 'a timeout the library calls final', error: new TimeoutError('Fetching a schema timed out'), code: 'LOG_ERROR' },
    { name: 'NOT_LEADER_OR_FOLLOWER', error: response(KafkaCode.NOT_LEADER_OR_FOLLOWER), code: 'LOG_UNAVAILABLE', kafkaCode: 'NOT_LEADER_OR_FOLLOWER', stale: true },
    { name: 'LEADER_NOT_AVAILABLE', error: response(KafkaCode.LEADER_NOT_AVAILABLE), code: 'LOG_UNAVAILABLE', kafkaCode: 'LEADER_NOT_AVAILABLE', stale: true },
    { name: 'FENCED_LEADER_EPOCH', error: response(KafkaCode.FENCED_LEADER_EPOCH), code: 'LOG_UNAVAILABLE', kafkaCode: 'FENCED_LEADER_EPOCH', stale: true },
    { name: 'NOT_ENOUGH_REPLICAS', error: response(KafkaCode.NOT_ENOUGH_REPLICAS), code: 'LOG_UNAVAILABLE', kafkaCode: 'NOT_ENOUGH_REPLICAS' },
    { name: 'NOT_COORDINATOR', error: response(KafkaCode.NOT_COORDINATOR), code: 'LOG_UNAVAILABLE', kafkaCode: 'NOT_COORDINATOR' },
    { name: 'COORDINATOR_LOAD_IN_PROGRESS', error: response(KafkaCode.COORDINATOR_LOAD_IN_PROGRESS), code: 'LOG_UNAVAILABLE', kafkaCode: 'COORDINATOR_LOAD_IN_PROGRESS' },
    { name: 'REBALANCE_IN_PROGRESS (the library rejoins)', error: response(KafkaCode.REBALANCE_IN_PROGRESS), code: 'LOG_UNAVAILABLE', kafkaCode: 'REBALANCE_IN_PROGRESS' },
    { name: 'UNKNOWN_TOPIC_OR_PARTITION (stale until metadata says otherwise)', error: response(KafkaCode.UNKNOWN_TOPIC_OR_PARTITION), code: 'LOG_UNAVAILABLE', kafkaCode: 'UNKNOWN_TOPIC_OR_PARTITION', stale: true },
    { name: 'MESSAGE_TOO_LARGE', error: response(KafkaCode.MESSAGE_TOO_LARGE), code: 'LOG_ERROR', kafkaCode: 'MESSAGE_TOO_LARGE' },
    { name: 'RECORD_LIST_TOO_LARGE, named like MESSAGE_TOO_LARGE', error: response(KafkaCode.RECORD_LIST_TOO_LARGE), code: 'LOG_ERROR', kafkaCode: 'MESSAGE_TOO_LARGE' },
    { name: 'a retriable and a fatal partition error together', error: response(KafkaCode.NOT_LEADER_OR_FOLLOWER, KafkaCode.MESSAGE_TOO_LARGE), code: 'LOG_ERROR', kafkaCode: 'MESSAGE_TOO_LARGE', stale: true },
    { name: 'CORRUPT_MESSAGE (our own bytes: resending cannot help)', error: response(KafkaCode.CORRUPT_MESSAGE), code: 'LOG_ERROR', kafkaCode: 'CORRUPT_MESSAGE' },
    { name: 'TOPIC_ALREADY_EXISTS', error: new MultipleErrors('Creating topics failed.', [response(KafkaCode.TOPIC_ALREADY_EXISTS)]), code: 'LOG_ERROR', kafkaCode: 'TOPIC_ALREADY_EXISTS' },
    { name: 'OUT_OF_ORDER_SEQUENCE_NUMBER', error: new ProtocolError(KafkaCode.OUT_OF_ORDER_SEQUENCE_NUMBER), code: 'LOG_ERROR', kafkaCode: 'OUT_OF_ORDER_SEQUENCE_NUMBER' },
    {
      name: 'retries that ended in a final error',
      error: new MultipleErrors('metadata failed 3 times.', [new NetworkError('Connection closed'), new NetworkError('Connection closed'), new UserError('Unknown topic prices.')]),
      code: 'LOG_ERROR',
    },
    { name: 'a bug of ours', error: new TypeError('x is not a function'), code: 'LOG_ERROR' },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const result = classifyKafkaError(c.error, context);
      assert.equal(result.code, c.code);
      assert.equal(result.retriable, c.code === 'LOG_UNAVAILABLE');
      assert.equal(result.details.kafkaCode, c.kafkaCode);
      assert.equal(result.details.staleMetadata === true, c.stale === true);
      assert.equal(result.details.topic, 'prices');
      assert.equal(result.cause, c.error);
      assert.ok(result.message.startsWith('produce to prices: '), result.message);
      assert.ok(!result.message.includes('\n'));
    });
  }

  it('says which broker failed and why', () => {
    const result = classifyKafkaError(new MultipleErrors('Listing offsets failed.', [new NetworkError('Connection to 127.0.0.1:9094 failed.', { cause: refused() })]), { action: 'list offsets of T' });
    assert.equal(result.message, 'list offsets of T: Connection to 127.0.0.1:9094 failed. (connect ECONNREFUSED 127.0.0.1:9094)');
  });

  it('returns a TickflowError as it is', () => {
    const error = new TickflowError('UNKNOWN_TOPIC', 'topic x does not exist');
    assert.equal(classifyKafkaError(error, context), error);
  });

  it('marks the answers that may mean a missing topic, when a topic is concerned', () => {
    assert.equal(topicMayBeMissing(classifyKafkaError(response(KafkaCode.UNKNOWN_TOPIC_OR_PARTITION), context)), true);
    assert.equal(topicMayBeMissing(classifyKafkaError(new UserError('Unknown topic prices.'), context)), true);
    assert.equal(topicMayBeMissing(classifyKafkaError(response(KafkaCode.UNKNOWN_TOPIC_OR_PARTITION), { action: 'list topics' })), false);
    assert.equal(topicMayBeMissing(classifyKafkaError(response(KafkaCode.NOT_LEADER_OR_FOLLOWER), context)), false);
  });
});

describe('topicListedSince (an "unknown topic" answer for a topic fresh metadata lists)', () => {
  it('makes the library\'s Unknown-topic answer retriable with stale metadata, after its own retries too', () => {
    for (const error of [
      new UserError('Unknown topic prices.'),
      new MultipleErrors('metadata failed 3 times.', [new NetworkError('Connection closed'), new UserError('Unknown topic prices.')]),
    ]) {
      const classified = classifyKafkaError(error, context);
      assert.equal(classified.retriable, false, 'alone, the answer is final');
      const again = topicListedSince(classified);
      assert.equal(again.code, 'LOG_UNAVAILABLE');
      assert.equal(again.retriable, true);
      assert.equal(again.details.staleMetadata, true);
      assert.equal(again.details.topic, 'prices');
      assert.equal(again.message, classified.message);
      assert.equal(again.cause, error);
    }
  });

  it('returns any other error as it is', () => {
    const others = [
      new UserError('Specified partition(s) not found in topic prices'),
      new MultipleErrors('metadata failed.', [new UserError('Unknown topic prices.'), response(KafkaCode.MESSAGE_TOO_LARGE)]),
      response(protocolErrors.TOPIC_AUTHORIZATION_FAILED.code),
      response(KafkaCode.NOT_LEADER_OR_FOLLOWER),
      new TypeError('x is not a function'),
    ];
    for (const error of others) {
      const classified = classifyKafkaError(error, context);
      assert.equal(topicListedSince(classified), classified, String(error));
    }
  });
});

describe('errorForCode (codes of our own Produce and Fetch responses)', () => {
  it('names the partition and classifies like the library would', () => {
    const error = errorForCode(KafkaCode.NOT_LEADER_OR_FOLLOWER, { ...context, partition: 2 });
    assert.equal(error.code, 'LOG_UNAVAILABLE');
    assert.deepEqual({ ...error.details }, { topic: 'prices', partition: 2, kafkaCode: 'NOT_LEADER_OR_FOLLOWER', staleMetadata: true });
    assert.match(error.message, /^produce to prices \[partition 2\]: NOT_LEADER_OR_FOLLOWER \(Kafka error 6\)/);
  });

  it('gives a too-large record the detail a dead-letter writer branches on', () => {
    const error = errorForCode(KafkaCode.MESSAGE_TOO_LARGE, { ...context, partition: 1 });
    assert.equal(error.code, 'LOG_ERROR');
    assert.deepEqual({ ...error.details }, { topic: 'prices', partition: 1, kafkaCode: 'MESSAGE_TOO_LARGE' });
    assert.equal(isTooLarge(error), true);
    assert.equal(isTooLarge(errorForCode(KafkaCode.NOT_LEADER_OR_FOLLOWER, context)), false);
  });

  it('keeps a code the library does not know, not retriable', () => {
    const error = errorForCode(9999, context);
    assert.equal(error.code, 'LOG_ERROR');
    assert.equal(error.details.kafkaCode, 'KAFKA_ERROR_9999');
  });
});

describe('KafkaCode', () => {
  it('takes every code from the library table', () => {
    for (const [name, code] of Object.entries(KafkaCode)) {
      assert.equal(kafkaCodeName(code), name);
      assert.equal(protocolErrors[name]?.code, code);
    }
  });

  it('retries what waiting cures and nothing else', () => {
    const retriable = [
      'NOT_LEADER_OR_FOLLOWER',
      'LEADER_NOT_AVAILABLE',
      'UNKNOWN_TOPIC_OR_PARTITION',
      'NOT_COORDINATOR',
      'COORDINATOR_LOAD_IN_PROGRESS',
      'COORDINATOR_NOT_AVAILABLE',
      'REQUEST_TIMED_OUT',
      'NOT_ENOUGH_REPLICAS',
      'NOT_ENOUGH_REPLICAS_AFTER_APPEND',
      'FENCED_LEADER_EPOCH',
      'UNKNOWN_LEADER_EPOCH',
      'OFFSET_NOT_AVAILABLE',
      'NETWORK_EXCEPTION',
      'NOT_CONTROLLER',
      'BROKER_NOT_AVAILABLE',
    ] as const;
    const final = ['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE', 'OUT_OF_ORDER_SEQUENCE_NUMBER', 'UNKNOWN_PRODUCER_ID', 'INVALID_PRODUCER_EPOCH', 'OFFSET_OUT_OF_RANGE', 'TOPIC_ALREADY_EXISTS', 'CORRUPT_MESSAGE'] as const;
    for (const name of retriable) assert.equal(isRetriableCode(KafkaCode[name]), true, name);
    for (const name of final) assert.equal(isRetriableCode(KafkaCode[name]), false, name);
  });
});

describe('classifyKafkaError: TLS, SASL and ACL failures say which, and are not retried', () => {
  const security = { tls: true, brokers: ['kafka-1:9096'], user: 'tf-stats', mechanism: 'SCRAM-SHA-512' };
  const failed = (cause: Error) => new MultipleErrors('Listing topics failed.', [new MultipleErrors('Cannot connect to any broker.', [new NetworkError('Connection to kafka-1:9096 failed.', { cause })])]);
  const tlsError = (code: string, message: string) => Object.assign(new Error(message), { code });
  const cases: Array<{ name: string; error: unknown; kind: string; message: string }> = [
    {
      name: 'a wrong SCRAM password',
      error: failed(new AuthenticationError('SASL authentication failed.', { cause: new ResponseError(36, 2, { '': [protocolErrors.SASL_AUTHENTICATION_FAILED.code, null] }, {}) })),
      kind: 'sasl',
      message: 'list topics: SASL authentication of user tf-stats (SCRAM-SHA-512) failed at kafka-1:9096: wrong user name or password',
    },
    {
      name: 'a certificate from an unknown CA',
      error: failed(tlsError('UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'unable to verify the first certificate')),
      kind: 'tls-ca',
      message: "list topics: TLS: the certificate of kafka-1:9096 is not signed by a trusted CA (UNABLE_TO_VERIFY_LEAF_SIGNATURE); give the cluster's CA with --kafka-ca or KAFKA_CA_FILE",
    },
    {
      name: 'a certificate for another host',
      error: failed(tlsError('ERR_TLS_CERT_ALTNAME_INVALID', "Hostname/IP does not match certificate's altnames: Host: kafka-1. is not in the cert's altnames: DNS:kafka-2")),
      kind: 'tls-host',
      message: "list topics: TLS: the certificate of kafka-1:9096 is not for that host name (Hostname/IP does not match certificate's altnames: Host: kafka-1. is not in the cert's altnames: DNS:kafka-2); connect by a name the certificate lists",
    },
    {
      name: 'an expired certificate',
      error: failed(tlsError('CERT_HAS_EXPIRED', 'certificate has expired')),
      kind: 'tls-expired',
      message: 'list topics: TLS: the certificate of kafka-1:9096 is expired or not yet valid (CERT_HAS_EXPIRED); renew it',
    },
    {
      name: 'a plaintext client on a TLS listener',
      error: new MultipleErrors('Listing topics failed.', [new UserError('Broker requires TLS.')]),
      kind: 'tls-required',
      message: 'list topics: the listener at kafka-1:9096 speaks TLS but this client connects without it; add --kafka-tls (and --kafka-ca)',
    },
    {
      name: 'a TLS client on a plaintext listener',
      error: failed(new UserError('TLS handshake failed. Please verify the broker supports TLS.', { cause: tlsError('ECONNRESET', 'Client network socket disconnected before secure TLS connection was established') })),
      kind: 'tls-refused',
      message: "list topics: TLS handshake with kafka-1:9096 failed: the listener does not speak TLS (drop --kafka-tls, or use the broker's TLS port)",
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const result = classifyKafkaError(c.error, { action: 'list topics', security });
      assert.equal(result.code, 'LOG_ERROR');
      assert.equal(result.retriable, false);
      assert.equal(result.details.security, c.kind);
      assert.equal(result.message, c.message);
    });
  }

  it('a principal without the ACL for a topic, from a produce response', () => {
    const result = classifyKafkaError(response(protocolErrors.TOPIC_AUTHORIZATION_FAILED.code), { ...context, partition: 2, security });
    assert.equal(result.retriable, false);
    assert.equal(result.details.kafkaCode, 'TOPIC_AUTHORIZATION_FAILED');
    assert.equal(result.message, 'produce to prices [partition 2]: not authorized: user tf-stats may not use topic prices (TOPIC_AUTHORIZATION_FAILED); the cluster needs an ACL for it (tickflow acls --print)');
  });

  it('a group the principal may not use', () => {
    const result = classifyKafkaError(new ProtocolError(protocolErrors.GROUP_AUTHORIZATION_FAILED.code), { action: 'join group g', security });
    assert.equal(result.message, 'join group g: not authorized: user tf-stats may not use this consumer group (GROUP_AUTHORIZATION_FAILED); the cluster needs an ACL for it (tickflow acls --print)');
  });

  it('a transactional id the principal may not use: the id and the ACL to grant, not fencing', () => {
    const result = classifyKafkaError(new ProtocolError(protocolErrors.TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code), { action: 'initialise the transactional producer', transactionalId: 'tickflow-indicators-g-prices-0', security });
    assert.equal(result.code, 'LOG_ERROR');
    assert.deepEqual([result.details.security, result.details.kafkaCode, result.details.transactionalId, result.details.producerFenced], ['acl', 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED', 'tickflow-indicators-g-prices-0', undefined]);
    assert.equal(
      result.message,
      'initialise the transactional producer: not authorized: user tf-stats may not use transactional id tickflow-indicators-g-prices-0 (TRANSACTIONAL_ID_AUTHORIZATION_FAILED); the cluster needs an ACL allowing Write on TransactionalId tickflow-indicators-g-prices-0 or a prefix of it (tickflow acls --print)',
    );
  });
});
