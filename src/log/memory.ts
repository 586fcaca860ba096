import { EmbeddedLog } from './embedded.ts';
import type { LogStorage, NewRecord, StoredPartition } from './embedded.ts';
import type { LogRecord, TopicSpec } from './types.ts';

class MemoryPartition implements StoredPartition {
  readonly records: LogRecord[] = [];
  start(): number {
    return 0;
  }
  end(): number {
    return this.records.length;
  }
  read(from: number, to: number, max: number): LogRecord[] {
    return this.records.slice(from, Math.min(to, from + max, this.records.length));
  }
}

/** Records in arrays, committed offsets in maps: gone with the process. */
class MemoryStorage implements LogStorage {
  readonly description = 'embedded in-process log';
  #topics = new Map<string, MemoryPartition[]>();

  partitions(topic: string): readonly MemoryPartition[] | undefined {
    return this.#topics.get(topic);
  }
  topicNames(): string[] {
    return [...this.#topics.keys()];
  }
  createTopic(spec: TopicSpec, partitions: number): void {
    this.#topics.set(spec.name, Array.from({ length: partitions }, () => new MemoryPartition()));
  }
  deleteTopic(name: string): void {
    this.#topics.delete(name);
  }
  async append(topic: string, byPartition: ReadonlyMap<number, NewRecord[]>): Promise<void> {
    const partitions = this.#topics.get(topic)!;
    for (const [partition, records] of byPartition) {
      const target = partitions[partition].records;
      for (const record of records) target.push({ topic, partition, offset: BigInt(target.length), ...record });
    }
  }
  loadCommitted(): Map<string, Map<string, bigint>> {
    return new Map();
  }
  async saveCommitted(): Promise<void> {}
  async close(): Promise<void> {}
}

/**
 * The embedded log in memory only: for fast tests and benchmarks. Not durable; the CLI's
 * embedded default is DiskLog (src/log/disk.ts), which keeps the same log under --data-dir.
 */
export class MemoryLog extends EmbeddedLog {
  constructor() {
    super(new MemoryStorage());
  }
}
