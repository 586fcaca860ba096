import { MemoryLog } from '../../src/log/memory.ts';
import { logContract } from './contract.ts';

logContract({ name: 'embedded', open: async () => new MemoryLog(), groupTimeoutMs: 2000 });
