/**
 * Where `archive` writes: table `archived_messages`, keyed by (topic, partition, offset).
 * Rows go in with multi-row `INSERT ... SELECT FROM unnest(...)` and `ON CONFLICT DO
 * NOTHING`, so a message archived twice (a replay, `--from-beginning`, a second group)
 * still has one row.
 */
import { isUtf8 } from 'node:buffer';
import type { Queryable } from './types.ts';
import type { LogRecord } from '../log/types.ts';

/** Rows per statement: bounds the size of one bind message. */
const ROWS_PER_STATEMENT = 2000;

export type ArchivedHeader = { key: string; value: string } | { key: string; base64: string } | { keyBase64: string; base64: string };

/** Header values as text when they are clean UTF-8 (jsonb refuses NUL), else base64. */
export function headersToJson(headers: LogRecord['headers']): ArchivedHeader[] {
  return headers.map(([key, value]) => {
    const keyIsText = !key.includes('\u0000');
    if (keyIsText && isText(value)) return { key, value: value.toString('utf8') };
    return keyIsText ? { key, base64: value.toString('base64') } : { keyBase64: Buffer.from(key).toString('base64'), base64: value.toString('base64') };
  });
}

function isText(value: Buffer): boolean {
  return isUtf8(value) && !value.includes(0);
}

/** Inserts the records (inside the caller's transaction); returns how many rows were new. */
export async function archiveRecords(tx: Queryable, records: readonly LogRecord[]): Promise<number> {
  let inserted = 0;
  for (let start = 0; start < records.length; start += ROWS_PER_STATEMENT) {
    const chunk = records.slice(start, start + ROWS_PER_STATEMENT);
    const { rowCount } = await tx.query(
      `INSERT INTO archived_messages (topic, partition, "offset", key, value, headers, record_time)
       SELECT t, p, o, k, v, h, timestamptz 'epoch' + ms * interval '1 millisecond'
       FROM unnest($1::text[], $2::int[], $3::bigint[], $4::bytea[], $5::bytea[], $6::jsonb[], $7::bigint[]) AS r(t, p, o, k, v, h, ms)
       ON CONFLICT (topic, partition, "offset") DO NOTHING`,
      [
        chunk.map((r) => r.topic),
        chunk.map((r) => r.partition),
        chunk.map((r) => String(r.offset)),
        chunk.map((r) => r.key),
        chunk.map((r) => r.value),
        chunk.map((r) => JSON.stringify(headersToJson(r.headers))),
        chunk.map((r) => String(r.timestamp)),
      ],
    );
    inserted += rowCount;
  }
  return inserted;
}
