/**
 * Plain KafkaJS producer: JSON.stringify each tick, send in batches of 1000 with an
 * idempotent producer (acks=all). Baseline for `tickflow produce prices`.
 * Usage: node kafkajs-produce.ts BROKERS TOPIC COUNT
 */
import kafkajs from 'kafkajs';

const [brokers, topic, countText] = process.argv.slice(2);
const count = Number(countText);
const kafka = new kafkajs.Kafka({ clientId: 'bench-kafkajs-producer', brokers: brokers.split(','), logLevel: kafkajs.logLevel.NOTHING });
const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
await producer.connect();
const symbols = ['AAPL', 'MSFT', 'AMZN', 'GOOG', 'TSLA'];
const start = Date.UTC(2021, 2, 10, 16);
for (let sent = 0; sent < count; ) {
  const messages = [];
  for (let i = 0; i < 1000 && sent < count; i++, sent++) {
    const symbol = symbols[sent % 5];
    const ts = new Date(start + sent * 100).toISOString().replace('T', ' ').replace('Z', '');
    messages.push({ key: symbol, value: JSON.stringify({ ts, symbol, price: Math.round((200 + Math.random() * 10) * 100) / 100 }) });
  }
  await producer.send({ topic, acks: -1, messages });
}
await producer.disconnect();
console.log(JSON.stringify({ count }));
