import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isTickflowError } from '../../src/core/errors.ts';
import type { TickerWindow } from '../../src/core/stock-windows.ts';
import { openDatabase } from '../../src/db/open.ts';
import { claimPartitions, loadOffsets } from '../../src/db/offset-store.ts';
import { claimStockPartitions, commitStockWindows } from '../../src/db/stock-window-store.ts';
import type { Database } from '../../src/db/types.ts';
import { isolatedDatabase, storedWindows, uniqueName } from './fixtures.ts';
import type { IsolatedDatabase } from './fixtures.ts';

const T0 = Date.UTC(2024, 0, 1);
const part = (ticker: string, start: number, count: number, sum: number, min: number, max: number): TickerWindow => ({ ticker, start, end: start + 30_000, summary: { count, sum, min, max } });

const backends: Array<{ name: string; open: () => Promise<{ db: Database; done: () => Promise<void> }> }> = [
  {
    name: 'postgres',
    open: async () => {
      const isolated: IsolatedDatabase = await isolatedDatabase('stocks_store');
      const db = await isolated.open();
      return { db, done: async () => { await db.close(); await isolated.drop(); } };
    },
  },
  {
    name: 'pglite',
    open: async () => {
      const db = await openDatabase({ dataDir: 'memory://' });
      return { db, done: () => db.close() };
    },
  },
];

for (const backend of backends) {
  describe(`stock window store: ${backend.name}`, () => {
    let db: Database;
    let done: () => Promise<void>;
    before(async () => {
      ({ db, done } = await backend.open());
    });
    after(async () => {
      await done();
    });

    it('a first claim starts every partition where it is told, with no state', async () => {
      const consumer = uniqueName('first');
      const claim = await claimStockPartitions(db, consumer, 'stocks', new Map([[0, 0n], [1, 5n]]));
      assert.equal(claim.generation, 1);
      assert.deepEqual(claim.offsets, new Map([[0, 0n], [1, 5n]]));
      assert.deepEqual(claim.snapshots, new Map([[0, { streamTime: null, open: [] }], [1, { streamTime: null, open: [] }]]));
    });

    it('a commit stores offsets, open windows and stream times that the next claim resumes from', async () => {
      const consumer = uniqueName('resume');
      const first = await claimStockPartitions(db, consumer, 'stocks', new Map([[0, 0n], [1, 0n]]));
      await commitStockWindows(db, {
        consumer, topic: 'stocks', generation: first.generation,
        offsets: new Map([[0, 40n]]),
        snapshots: new Map([[0, { streamTime: T0 + 31_000, open: [part('AMZN', T0 + 30_000, 2, 3800, 1890, 1910)] }]]),
        closed: [],
      });
      const second = await claimStockPartitions(db, consumer, 'stocks', new Map([[0, 0n], [1, 0n]]));
      assert.equal(second.generation, first.generation + 1);
      assert.deepEqual(second.offsets, new Map([[0, 40n], [1, 0n]]));
      assert.deepEqual(second.snapshots.get(0), { streamTime: T0 + 31_000, open: [part('AMZN', T0 + 30_000, 2, 3800, 1890, 1910)] });
      assert.deepEqual(second.snapshots.get(1), { streamTime: null, open: [] });
    });

    it('closed parts of one window from several commits add up; their state is replaced', async () => {
      const consumer = uniqueName('merge');
      const ticker = uniqueName('T').slice(0, 30);
      const claim = await claimStockPartitions(db, consumer, 'stocks', new Map([[0, 0n], [1, 0n]]));
      const open = { streamTime: T0 + 10_000, open: [part(ticker, T0, 1, 10, 10, 10)] };
      await commitStockWindows(db, { consumer, topic: 'stocks', generation: claim.generation, offsets: new Map([[0, 1n]]), snapshots: new Map([[0, open]]), closed: [] });
      const empty = { streamTime: T0 + 40_000, open: [] };
      await commitStockWindows(db, { consumer, topic: 'stocks', generation: claim.generation, offsets: new Map([[0, 2n]]), snapshots: new Map([[0, empty]]), closed: [part(ticker, T0, 2, 30, 10, 20)] });
      await commitStockWindows(db, { consumer, topic: 'stocks', generation: claim.generation, offsets: new Map([[1, 3n]]), snapshots: new Map([[1, empty]]), closed: [part(ticker, T0, 3, 9, 2, 4)] });
      const rows = (await storedWindows(db)).filter((r) => r.ticker === ticker);
      assert.deepEqual(rows, [{ ticker, start: T0, end: T0 + 30_000, count: 5, sum: 39, min: 2, max: 20, average: '7.8000000000000000' }]);
      const again = await claimStockPartitions(db, consumer, 'stocks', new Map([[0, 0n], [1, 0n]]));
      assert.deepEqual(again.snapshots.get(0), empty);
    });

    it('fences the previous owner: its commit rolls back whole, windows included', async () => {
      const consumer = uniqueName('fence');
      const ticker = uniqueName('F').slice(0, 30);
      const a = await claimStockPartitions(db, consumer, 'stocks', new Map([[0, 0n], [1, 0n]]));
      await commitStockWindows(db, { consumer, topic: 'stocks', generation: a.generation, offsets: new Map([[0, 10n]]), snapshots: new Map([[0, { streamTime: T0, open: [] }]]), closed: [] });
      const b = await claimStockPartitions(db, consumer, 'stocks', new Map([[1, 0n]]));
      await assert.rejects(
        commitStockWindows(db, {
          consumer, topic: 'stocks', generation: a.generation,
          offsets: new Map([[0, 20n], [1, 7n]]),
          snapshots: new Map([[0, { streamTime: T0, open: [] }], [1, { streamTime: T0, open: [part(ticker, T0, 1, 1, 1, 1)] }]]),
          closed: [part(ticker, T0 - 30_000, 1, 5, 5, 5)],
        }),
        (error) => isTickflowError(error, 'FENCED'),
      );
      assert.deepEqual(await loadOffsets(db, consumer, 'stocks'), new Map([[0, 10n], [1, 0n]]));
      assert.equal((await storedWindows(db)).filter((r) => r.ticker === ticker).length, 0);
      const resumed = await claimStockPartitions(db, consumer, 'stocks', new Map([[1, 0n]]));
      assert.ok(resumed.generation > b.generation);
      assert.deepEqual(resumed.snapshots.get(1), { streamTime: null, open: [] });
    });

    it('fences an owner that never committed: the claim writes the partition row', async () => {
      const consumer = uniqueName('never');
      const a = await claimStockPartitions(db, consumer, 'stocks', new Map([[2, 0n]]));
      await claimStockPartitions(db, consumer, 'stocks', new Map([[2, 0n]]));
      await assert.rejects(
        commitStockWindows(db, { consumer, topic: 'stocks', generation: a.generation, offsets: new Map([[2, 99n]]), snapshots: new Map([[2, { streamTime: T0, open: [] }]]), closed: [] }),
        (error) => isTickflowError(error, 'FENCED'),
      );
    });

    it('shares generations with claimPartitions (one lock, one sequence)', async () => {
      const consumer = uniqueName('shared');
      const stock = await claimStockPartitions(db, consumer, 'stocks', new Map([[0, 0n]]));
      const plain = await claimPartitions(db, consumer, 'stocks', [0]);
      assert.equal(plain.generation, stock.generation + 1);
    });
  });
}
