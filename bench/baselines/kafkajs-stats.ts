/**
 * The plain version a user would write with KafkaJS: eachMessage + JSON.parse, prices in
 * arrays per symbol, then mean, stddev and 3-sigma outliers. Baseline for `tickflow stats`.
 * Usage: node kafkajs-stats.ts BROKERS TOPIC
 */
import kafkajs from 'kafkajs';

const [brokers, topic] = process.argv.slice(2);
const kafka = new kafkajs.Kafka({ clientId: 'bench-kafkajs', brokers: brokers.split(','), logLevel: kafkajs.logLevel.NOTHING });
const admin = kafka.admin();
await admin.connect();
const ends = await admin.fetchTopicOffsets(topic);
await admin.disconnect();
let remaining = ends.reduce((n, p) => n + Number(p.high) - Number(p.low), 0);
const bySymbol = new Map<string, { ts: string; price: number }[]>();
const consumer = kafka.consumer({ groupId: `bench-kafkajs-${Date.now()}`, maxBytes: 64 << 20 });
await consumer.connect();
await consumer.subscribe({ topic, fromBeginning: true });
let invalid = 0;
await new Promise<void>((resolve) => {
  void consumer.run({
    eachMessage: async ({ message }) => {
      try {
        const tick = JSON.parse(message.value!.toString());
        let list = bySymbol.get(tick.symbol);
        if (!list) bySymbol.set(tick.symbol, (list = []));
        list.push({ ts: tick.ts, price: tick.price });
      } catch {
        invalid++;
      }
      if (--remaining === 0) resolve();
    },
  });
});
await consumer.disconnect();
let count = 0;
let outliers = 0;
for (const list of bySymbol.values()) {
  const mean = list.reduce((s, t) => s + t.price, 0) / list.length;
  const sd = Math.sqrt(list.reduce((s, t) => s + (t.price - mean) ** 2, 0) / (list.length - 1));
  outliers += list.filter((t) => Math.abs(t.price - mean) > 3 * sd).length;
  count += list.length;
}
console.log(JSON.stringify({ count: count + invalid, outliers, invalid }));
