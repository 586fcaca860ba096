import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { TickflowError } from '../core/errors.ts';
import { fileErrorText } from '../core/file-errors.ts';

/**
 * The bytes of a file or of stdin ("-"), decompressed when they are gzip (recognised by
 * their magic number, whatever the name), in chunks of `chunkBytes`. `consumed` counts the
 * raw bytes read so far, which against `size` (files only) gives progress and an ETA.
 */
export interface ByteSource {
  readonly name: string;
  /** Raw (possibly compressed) size, when known. */
  readonly size: number | null;
  /** Raw bytes read so far. */
  consumed(): number;
  /** Whether the bytes turned out to be gzip (known after the first chunk). */
  gzip(): boolean;
  chunks(): AsyncIterable<Buffer>;
}

export async function openByteSource(path: string, options: { chunkBytes?: number; stdin?: NodeJS.ReadableStream } = {}): Promise<ByteSource> {
  const chunkBytes = options.chunkBytes ?? 1 << 20;
  let size: number | null = null;
  let raw: NodeJS.ReadableStream;
  if (path === '-') {
    raw = options.stdin ?? process.stdin;
  } else {
    try {
      const info = await stat(path);
      if (info.isDirectory()) throw new TickflowError('BAD_INPUT', `cannot read ${path}: is a directory (EISDIR)`);
      if (!info.isFile()) throw new TickflowError('BAD_INPUT', `cannot read ${path}: not a regular file`);
      size = info.size;
      // Opening now reports an unreadable file (EACCES) before anything is sent anywhere.
      raw = createReadStream(path, { highWaterMark: chunkBytes, fd: await open(path, 'r') });
    } catch (error) {
      if (error instanceof TickflowError) throw error;
      throw new TickflowError('BAD_INPUT', fileErrorText(error) ?? `cannot read ${path}: ${(error as Error).message}`);
    }
  }
  let consumed = 0;
  let gzip = false;
  return {
    name: path === '-' ? 'stdin' : path,
    size,
    consumed: () => consumed,
    gzip: () => gzip,
    async *chunks() {
      const iterator = (raw as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
      const first = await iterator.next();
      if (first.done) return;
      const head = first.value as Buffer;
      async function* counted(): AsyncGenerator<Buffer> {
        consumed += head.length;
        yield head;
        for (;;) {
          const next = await iterator.next();
          if (next.done) return;
          consumed += (next.value as Buffer).length;
          yield next.value as Buffer;
        }
      }
      if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) {
        gzip = true;
        const gunzip = createGunzip({ chunkSize: chunkBytes });
        const feeding = pipeline(Readable.from(counted()), gunzip).catch((error: unknown) => {
          gunzip.destroy(error as Error);
        });
        try {
          for await (const chunk of gunzip) yield chunk as Buffer;
        } catch (error) {
          throw new TickflowError('BAD_INPUT', `${path === '-' ? 'stdin' : path}: bad gzip data (${(error as Error).message})`);
        }
        await feeding;
      } else {
        yield* counted();
      }
    },
  };
}
