"""The plain version a user would write with confluent-kafka: poll + json.loads, prices in
lists per symbol, then mean, stddev and 3-sigma outliers. Baseline for `tickflow stats`.
Usage: /usr/bin/python3 python_stats.py BROKERS TOPIC"""
import json
import math
import sys
import time

from confluent_kafka import Consumer, TopicPartition

brokers, topic = sys.argv[1], sys.argv[2]
consumer = Consumer({
    "bootstrap.servers": brokers,
    "group.id": f"bench-python-{time.time()}",
    "auto.offset.reset": "earliest",
    "enable.auto.commit": False,
})
meta = consumer.list_topics(topic, timeout=10)
remaining = 0
for p in meta.topics[topic].partitions:
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
    remaining += high - low
consumer.subscribe([topic])
by_symbol = {}
invalid = 0
while remaining > 0:
    for msg in consumer.consume(num_messages=10000, timeout=1.0):
        if msg.error():
            continue
        try:
            tick = json.loads(msg.value())
            by_symbol.setdefault(tick["symbol"], []).append((tick["ts"], tick["price"]))
        except (ValueError, KeyError):
            invalid += 1
        remaining -= 1
consumer.close()
count = invalid
outliers = 0
for ticks in by_symbol.values():
    prices = [p for _, p in ticks]
    mean = sum(prices) / len(prices)
    sd = math.sqrt(sum((p - mean) ** 2 for p in prices) / (len(prices) - 1))
    outliers += sum(1 for p in prices if abs(p - mean) > 3 * sd)
    count += len(prices)
print(json.dumps({"count": count, "outliers": outliers, "invalid": invalid}))
