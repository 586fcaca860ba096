import { DEFAULT_MAX_RECORD_BYTES } from '../runtime/dead-letters.ts';
import type { FlagSpec, FlagValues } from './command.ts';
import { bytes } from './flags.ts';

/** `--max-record-bytes`, the same on every command that consumes a topic (docs/dead-letters.md). */
export const MAX_RECORD_BYTES_FLAG: FlagSpec = {
  type: 'string',
  value: 'SIZE',
  default: '1MiB',
  description: 'A record whose value is larger is rejected as too-large without being parsed (dead-lettered by reference)',
};

export function maxRecordBytes(values: FlagValues): number {
  return bytes(values, 'max-record-bytes', DEFAULT_MAX_RECORD_BYTES, { min: 1 });
}
