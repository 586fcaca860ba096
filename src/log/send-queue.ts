import type { Producer, RecordToProduce } from './types.ts';

export interface SendQueueOptions {
  /** Awaited before the first send (e.g. topic creation). */
  ready?: Promise<unknown>;
  /** `room()` waits while more than this many value bytes are queued or unacknowledged. */
  maxPendingBytes?: number;
  /** Called once records are acknowledged. */
  onSent?: (topic: string, count: number) => void;
}

/**
 * Hands records to a producer without waiting for each acknowledgement, so a pipeline
 * keeps reading while the broker acknowledges. Everything queued while a send is in flight
 * goes out together in the next send (one per topic), sends run one after another, and
 * records of a topic keep the order they were added in. Memory is bounded by `room()`;
 * `drain()` waits until every record added so far is acknowledged (before committing the
 * offsets they came from). The first failure is thrown by the next `room()` or `drain()`.
 */
export class SendQueue {
  readonly #producer: Producer;
  readonly #ready: Promise<unknown>;
  readonly #maxPendingBytes: number;
  readonly #onSent: ((topic: string, count: number) => void) | undefined;
  #queued = new Map<string, RecordToProduce[]>();
  #pendingBytes = 0;
  #pump: Promise<void> | null = null;
  #failure: { error: unknown } | null = null;

  constructor(producer: Producer, options: SendQueueOptions = {}) {
    this.#producer = producer;
    this.#ready = options.ready ?? Promise.resolve();
    this.#maxPendingBytes = options.maxPendingBytes ?? 32 << 20;
    this.#onSent = options.onSent;
  }

  /** Value bytes added and not yet acknowledged. */
  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  add(topic: string, records: readonly RecordToProduce[]): void {
    if (records.length === 0) return;
    let list = this.#queued.get(topic);
    if (!list) this.#queued.set(topic, (list = []));
    for (const record of records) {
      list.push(record);
      this.#pendingBytes += sizeOf(record);
    }
    this.#pump ??= this.#run();
  }

  /** Waits while too much is unacknowledged. */
  async room(): Promise<void> {
    while (this.#pendingBytes > this.#maxPendingBytes && this.#pump) await this.#pump;
    this.#throwFailure();
  }

  /** Waits until everything added so far is acknowledged. */
  async drain(): Promise<void> {
    while (this.#pump) await this.#pump;
    this.#throwFailure();
  }

  async #run(): Promise<void> {
    try {
      await this.#ready;
      while (this.#queued.size > 0 && !this.#failure) {
        const batch = this.#queued;
        this.#queued = new Map();
        for (const [topic, records] of batch) {
          await this.#producer.send(topic, records);
          for (const record of records) this.#pendingBytes -= sizeOf(record);
          this.#onSent?.(topic, records.length);
        }
      }
    } catch (error) {
      this.#failure ??= { error };
    } finally {
      this.#pump = null;
    }
  }

  #throwFailure(): void {
    if (this.#failure) throw this.#failure.error;
  }
}

function sizeOf(record: RecordToProduce): number {
  const { value } = record;
  return value === null ? 0 : typeof value === 'string' ? value.length : value.length;
}
