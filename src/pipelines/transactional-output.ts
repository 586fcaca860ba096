import { TickflowError, isTickflowError } from '../core/errors.ts';
import { isProducerFenced } from '../log/kafka-transaction.ts';
import type { Log, Producer, RecordToProduce, TransactionalProducer } from '../log/types.ts';

/**
 * The output of a producer command (`produce prices`, `generate stocks`, `replay`): the log's
 * idempotent producer, or with `--transactional` the same records in Kafka transactions, so
 * that read_committed readers see a run (or each batch of it) whole or not at all.
 *
 * - Whole run (`size` null): one transaction from the first record to the end of the run. A
 *   run that does not reach its end (kill -9, a failure, Ctrl-C) leaves nothing visible.
 * - Batches (`size` N): a transaction per N records, committed as soon as it holds N (a send
 *   is split at the boundary); the last may hold fewer. A crash leaves whole batches only.
 * - The transactional id is taken over when the output opens (InitProducerId): an earlier
 *   producer of the same id — a crashed run, or one still running — is fenced and its open
 *   transaction aborted before this run writes anything.
 * - Sends are applied one after the other, each awaited before the next (and before a
 *   commit): a failed send is never followed by a commit of what part of it was written.
 *   After a failure every later call fails with it, and closing aborts the transaction.
 */

export interface ProducerTransactions {
  /** The transactional id; a run with the same id fences this one (docs/guarantees.md). */
  id: string;
  /** Records per transaction; null: the whole run is one transaction. */
  size: number | null;
  /** How long one transaction may stay open before the coordinator aborts it. */
  timeoutMs: number;
}

/** What a transactional run committed and aborted. */
export interface TransactionTally {
  transactionalId: string;
  /** Records in committed transactions. */
  committed: number;
  /** Committed transactions. */
  transactions: number;
  /** Records sent in a transaction that was then aborted (a whole run stopped before its end). */
  aborted: number;
}

export interface RunOutput extends Producer {
  /**
   * Ends the run's output. Commits the open transaction, except when the run was
   * `interrupted` (Ctrl-C) in whole-run mode: then the run is incomplete and it is aborted.
   */
  finish(interrupted: boolean): Promise<void>;
  /** Null without transactions. */
  readonly tally: TransactionTally | null;
}

/** Opens the output; with transactions it takes the transactional id over first. */
export async function openRunOutput(log: Log, transactions: ProducerTransactions | null | undefined): Promise<RunOutput> {
  if (!transactions) {
    const producer = log.producer();
    return { send: (topic, records) => producer.send(topic, records), close: () => producer.close(), finish: async () => undefined, tally: null };
  }
  if (!log.transactionalProducer) {
    throw new TickflowError('BAD_CONFIG', `--transactional needs Kafka transactions, which ${log.kind === 'memory' ? 'the embedded log' : `the ${log.kind} log`} does not have: give --brokers (or KAFKA_BROKERS)`);
  }
  const producer = log.transactionalProducer(transactions.id, { timeoutMs: transactions.timeoutMs });
  const output = new TransactionalRunOutput(producer, transactions);
  try {
    await output.start();
  } catch (error) {
    await producer.close().catch(() => undefined);
    throw error;
  }
  return output;
}

class TransactionalRunOutput implements RunOutput {
  readonly tally: TransactionTally;
  readonly #producer: TransactionalProducer;
  readonly #settings: ProducerTransactions;
  /** Records sent in the open transaction. */
  #open = 0;
  #openedAt = 0;
  #failure: unknown = null;
  #tail: Promise<unknown> = Promise.resolve();

  constructor(producer: TransactionalProducer, settings: ProducerTransactions) {
    this.#producer = producer;
    this.#settings = settings;
    this.tally = { transactionalId: settings.id, committed: 0, transactions: 0, aborted: 0 };
  }

  start(): Promise<void> {
    return this.#run(() => this.#producer.init());
  }

  send(topic: string, records: readonly RecordToProduce[]): Promise<void> {
    return this.#run(async () => {
      const size = this.#settings.size;
      for (let from = 0; from < records.length; ) {
        const room = size === null ? records.length - from : size - this.#open;
        const piece = from === 0 && room >= records.length ? records : records.slice(from, from + room);
        if (this.#open === 0) this.#openedAt = performance.now();
        await this.#producer.send(topic, piece);
        this.#open += piece.length;
        from += piece.length;
        if (this.#open === size) await this.#commit();
      }
    });
  }

  finish(interrupted: boolean): Promise<void> {
    return this.#run(async () => {
      if (this.#open === 0) return;
      if (interrupted && this.#settings.size === null) await this.#abort();
      else await this.#commit();
    });
  }

  async close(): Promise<void> {
    await this.#tail;
    if (this.#open > 0) await this.#abort().catch(() => undefined);
    await this.#producer.close();
  }

  async #commit(): Promise<void> {
    await this.#producer.commit();
    this.tally.committed += this.#open;
    this.tally.transactions++;
    this.#open = 0;
  }

  async #abort(): Promise<void> {
    const records = this.#open;
    this.#open = 0;
    this.tally.aborted += records;
    await this.#producer.abort();
  }

  /** One operation after the ones before it; the first failure fails every later one. */
  #run(operation: () => Promise<void>): Promise<void> {
    const result = this.#tail.then(async () => {
      if (this.#failure) throw this.#failure;
      try {
        await operation();
      } catch (error) {
        this.#failure = this.#explain(error);
        throw this.#failure;
      }
    });
    this.#tail = result.catch(() => undefined);
    return result;
  }

  /** The one line a failure of the transaction deserves, when it says more than the raw error. */
  #explain(error: unknown): unknown {
    const { id, timeoutMs } = this.#settings;
    const openFor = performance.now() - this.#openedAt;
    if (isProducerFenced(error) && this.#open > 0 && openFor >= timeoutMs) {
      return new TickflowError(
        'LOG_ERROR',
        `transaction of ${id} was open for ${seconds(openFor)}, longer than --transaction-timeout ${seconds(timeoutMs)}: the coordinator aborted it, so none of its ${this.#open} records is visible to read_committed readers; raise --transaction-timeout (at most the broker's transaction.max.timeout.ms, 15m by default) or commit every N records with --transaction-size N`,
        { transactionalId: id, transactionTimedOut: true },
        { cause: error },
      );
    }
    if (isTickflowError(error) && error.details.kafkaCode === 'INVALID_TRANSACTION_TIMEOUT') {
      return new TickflowError('BAD_CONFIG', `--transaction-timeout ${seconds(timeoutMs)}: the broker refuses it (INVALID_TRANSACTION_TIMEOUT): it must not exceed the broker's transaction.max.timeout.ms (15m by default)`, { transactionalId: id }, { cause: error });
    }
    return error;
  }
}

function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(ms < 10_000 ? 1 : 0))}s`;
}
