import type { TopicPartition } from './types.ts';

/**
 * Kafka's range assignor: per topic, members sorted by id take contiguous runs of
 * partitions, the first `n % members` taking one extra. Used by the embedded log's
 * group coordinator (Kafka's own coordinator runs the client-side assignor there).
 */
export function rangeAssign(
  memberTopics: ReadonlyMap<string, readonly string[]>,
  partitionCounts: ReadonlyMap<string, number>,
): Map<string, TopicPartition[]> {
  const result = new Map<string, TopicPartition[]>();
  for (const member of memberTopics.keys()) result.set(member, []);
  const topics = new Set([...memberTopics.values()].flat());
  for (const topic of [...topics].sort()) {
    const members = [...memberTopics].filter(([, t]) => t.includes(topic)).map(([m]) => m).sort();
    const count = partitionCounts.get(topic) ?? 0;
    if (members.length === 0) continue;
    const per = Math.floor(count / members.length);
    const extra = count % members.length;
    let next = 0;
    members.forEach((member, i) => {
      const take = per + (i < extra ? 1 : 0);
      for (let p = next; p < next + take; p++) result.get(member)!.push({ topic, partition: p });
      next += take;
    });
  }
  return result;
}
