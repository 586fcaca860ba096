"""Plain confluent-kafka producer: json.dumps each tick, idempotent, acks=all.
Baseline for `tickflow produce prices`. Usage: /usr/bin/python3 python_produce.py BROKERS TOPIC COUNT"""
import json
import random
import sys
from datetime import datetime, timedelta, timezone

from confluent_kafka import Producer

brokers, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
producer = Producer({"bootstrap.servers": brokers, "enable.idempotence": True, "acks": "all", "linger.ms": 5})
symbols = ["AAPL", "MSFT", "AMZN", "GOOG", "TSLA"]
start = datetime(2021, 3, 10, 16, tzinfo=timezone.utc)
for i in range(count):
    symbol = symbols[i % 5]
    ts = (start + timedelta(milliseconds=100 * i)).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    value = json.dumps({"ts": ts, "symbol": symbol, "price": round(200 + random.random() * 10, 2)})
    while True:
        try:
            producer.produce(topic, key=symbol, value=value)
            break
        except BufferError:
            producer.poll(0.05)
    producer.poll(0)
producer.flush()
print(json.dumps({"count": count}))
