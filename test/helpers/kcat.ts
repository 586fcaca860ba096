/**
 * kcat (librdkafka), an independent client: what a topic holds for a reader at either
 * isolation level. At read_committed it ends every partition at its last stable offset.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

export const KCAT = '/usr/bin/kcat';

export type Isolation = 'read_committed' | 'read_uncommitted';

export interface KcatRecord {
  partition: number;
  offset: number;
  value: string;
}

/** Every record of the topic up to the end (the last stable offset at read_committed), in partition and offset order. */
export async function kcatRecords(brokers: string, topic: string, isolation: Isolation, extra: readonly string[] = []): Promise<KcatRecord[]> {
  const { stdout } = await promisify(execFile)(KCAT, ['-b', brokers, '-C', '-t', topic, '-X', `isolation.level=${isolation}`, '-e', '-q', '-f', '%p %o %s\\n', ...extra], {
    encoding: 'utf8',
    timeout: 60_000,
    maxBuffer: 512 << 20,
  });
  return stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [partition, offset] = line.split(' ', 2);
      return { partition: Number(partition), offset: Number(offset), value: line.slice(partition.length + offset.length + 2) };
    });
}

/** The values, sorted: what a reader at that isolation level sees, as a multiset. */
export async function kcatValues(brokers: string, topic: string, isolation: Isolation): Promise<string[]> {
  return (await kcatRecords(brokers, topic, isolation)).map((r) => r.value).sort();
}
