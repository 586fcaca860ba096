import { createInterface } from 'node:readline';
import type { Log, LogRecord, PartitionOffsets, RangeReadOptions } from '../log/types.ts';

/** The name stdin and stdout have as a topic (as in dead letters' x-source-topic). */
export const STDIN_TOPIC = '-';

/**
 * `log` on which a send to topic "-" writes each record's value as one line to `out`
 * (JSON Lines on stdout) instead of to a topic.
 */
export function withStdoutTopic(log: Log, out: NodeJS.WritableStream): Log {
  return {
    ...bind(log),
    createTopics: (specs) => log.createTopics(specs.filter((s) => s.name !== STDIN_TOPIC)),
    producer: () => {
      const producer = log.producer();
      return {
        send: async (topic, records) => {
          if (topic !== STDIN_TOPIC) return producer.send(topic, records);
          const text = records.map((r) => `${r.value === null ? 'null' : Buffer.isBuffer(r.value) ? r.value.toString('utf8') : String(r.value)}\n`).join('');
          if (!out.write(text)) await new Promise((resolve) => out.once('drain', resolve));
        },
        close: () => producer.close(),
      };
    },
  };
}

/** The log's methods, bound, as a plain object to override some of. */
function bind(log: Log): Log {
  return {
    kind: log.kind,
    description: log.description,
    createTopics: (specs) => log.createTopics(specs),
    deleteTopics: (names) => log.deleteTopics(names),
    listTopics: () => log.listTopics(),
    offsets: (topic) => log.offsets(topic),
    groups: () => log.groups(),
    committed: (group, topic) => log.committed(group, topic),
    producer: () => log.producer(),
    readRange: (options) => log.readRange(options),
    subscribe: (options) => log.subscribe(options),
    close: () => log.close(),
  };
}

const BATCH = 1000;

/**
 * `log` with one more topic, "-": the JSON Lines of stdin as one partition, one record per
 * non-blank line (offset = its index, timestamp = when it was read). A bounded run
 * (`--until-end`) reads it like any topic; every other topic is `log`'s. Stdin is read whole
 * before the run starts, so it must fit in memory; a larger stream goes through a topic
 * (`tickflow replay FILE --output NAME`).
 */
export async function withStdinTopic(log: Log, stdin: NodeJS.ReadableStream = process.stdin): Promise<Log> {
  const values: Buffer[] = [];
  const timestamp = BigInt(Date.now());
  for await (const line of createInterface({ input: stdin, crlfDelay: Infinity })) {
    if (line.trim() !== '') values.push(Buffer.from(line));
  }
  const record = (offset: number): LogRecord => ({ topic: STDIN_TOPIC, partition: 0, offset: BigInt(offset), timestamp, key: null, value: values[offset], headers: [] });
  const offsets: PartitionOffsets[] = [{ partition: 0, earliest: 0n, latest: BigInt(values.length) }];
  return {
    ...bind(log),
    description: `stdin and ${log.description}`,
    createTopics: (specs) => log.createTopics(specs.filter((s) => s.name !== STDIN_TOPIC)),
    listTopics: async () => [STDIN_TOPIC, ...(await log.listTopics())],
    offsets: async (topic) => (topic === STDIN_TOPIC ? offsets.map((p) => ({ ...p })) : log.offsets(topic)),
    committed: (group, topic) => (topic === STDIN_TOPIC ? Promise.resolve(new Map()) : log.committed(group, topic)),
    readRange: (options) => (options.topic === STDIN_TOPIC ? readStdin(options) : log.readRange(options)),
  };

  async function* readStdin(options: RangeReadOptions): AsyncIterable<LogRecord[]> {
    if (options.partitions && !options.partitions.includes(0)) return;
    const end = Number(options.to?.get(0) ?? BigInt(values.length));
    for (let at = Number(options.from?.get(0) ?? 0n); at < end && !options.signal?.aborted; at += BATCH) {
      const batch: LogRecord[] = [];
      for (let i = at; i < Math.min(end, at + BATCH); i++) batch.push(record(i));
      yield batch;
    }
  }
}

/** The log a command reads `input` from and writes `output` to, "-" meaning stdin or stdout. */
export async function stdioLog(log: Log, { input, output, out }: { input?: string; output?: string; out: NodeJS.WritableStream }): Promise<Log> {
  const withInput = input === STDIN_TOPIC ? await withStdinTopic(log) : log;
  return output === STDIN_TOPIC ? withStdoutTopic(withInput, out) : withInput;
}
