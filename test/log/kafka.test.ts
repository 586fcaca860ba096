import { KafkaLog } from '../../src/log/kafka.ts';
import { KAFKA_BROKERS } from '../helpers/env.ts';
import { logContract } from './contract.ts';

logContract({ name: 'kafka', open: async () => new KafkaLog({ brokers: KAFKA_BROKERS }), groupTimeoutMs: 30_000 });
