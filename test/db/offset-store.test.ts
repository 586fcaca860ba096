import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isTickflowError } from '../../src/core/errors.ts';
import { claimPartitions, listStoredOffsets, loadOffsets, saveOffsets } from '../../src/db/offset-store.ts';
import type { Database } from '../../src/db/types.ts';
import { allBackends, uniqueName } from './backends.ts';

const BIG = 2n ** 53n + 7n; // not representable as a JS number

for (const backend of allBackends()) {
  describe(`offset store: ${backend.name}`, () => {
    let db: Database;
    before(async () => {
      db = await backend.open();
    });
    after(async () => {
      await db?.close();
      await backend.cleanup();
    });

    it('round-trips offsets above 2^53 exactly', async () => {
      const consumer = uniqueName('roundtrip');
      const offsets = new Map([[0, BIG], [1, 0n], [7, 42n]]);
      await db.transaction((tx) => saveOffsets(tx, consumer, 'prices', offsets, 0));
      assert.deepEqual(await loadOffsets(db, consumer, 'prices'), offsets);
      assert.deepEqual(await loadOffsets(db, consumer, 'other-topic'), new Map());
      await db.transaction((tx) => saveOffsets(tx, consumer, 'prices', new Map([[1, 10n]]), 0));
      assert.deepEqual(await loadOffsets(db, consumer, 'prices'), new Map([[0, BIG], [1, 10n], [7, 42n]]));
    });

    it('an empty batch is a no-op', async () => {
      const consumer = uniqueName('empty');
      await db.transaction((tx) => saveOffsets(tx, consumer, 't', new Map(), 3));
      assert.equal((await loadOffsets(db, consumer, 't')).size, 0);
    });

    it('fences an older generation and leaves the stored offset unchanged', async () => {
      const consumer = uniqueName('fence');
      await db.transaction((tx) => saveOffsets(tx, consumer, 't', new Map([[0, 100n], [1, 5n]]), 5));
      await assert.rejects(
        db.transaction((tx) => saveOffsets(tx, consumer, 't', new Map([[0, 200n], [1, 6n]]), 4)),
        (error) => {
          assert.ok(isTickflowError(error, 'FENCED'));
          assert.equal(error.retriable, false);
          assert.deepEqual(error.details.fencedBy, [{ partition: 0, generation: 5 }, { partition: 1, generation: 5 }]);
          return true;
        },
      );
      assert.deepEqual(await loadOffsets(db, consumer, 't'), new Map([[0, 100n], [1, 5n]]));
      await db.transaction((tx) => saveOffsets(tx, consumer, 't', new Map([[0, 300n]]), 5)); // same generation writes
      await db.transaction((tx) => saveOffsets(tx, consumer, 't', new Map([[0, 400n]]), 6)); // newer takes over
      assert.deepEqual(await loadOffsets(db, consumer, 't'), new Map([[0, 400n], [1, 5n]]));
    });

    it('a fenced save rolls back the output written in the same transaction', async () => {
      const consumer = uniqueName('fence-output');
      await db.query('CREATE TABLE sink_rows (id int PRIMARY KEY)');
      await db.transaction((tx) => saveOffsets(tx, consumer, 't', new Map([[0, 1n]]), 2));
      await assert.rejects(
        db.transaction(async (tx) => {
          await tx.query('INSERT INTO sink_rows VALUES (1)');
          await saveOffsets(tx, consumer, 't', new Map([[0, 2n], [3, 9n]]), 1); // partition 3 alone would pass
        }),
        (error) => isTickflowError(error, 'FENCED'),
      );
      assert.equal((await db.query('SELECT * FROM sink_rows')).rowCount, 0);
      assert.deepEqual(await loadOffsets(db, consumer, 't'), new Map([[0, 1n]]));
    });

    it('claimPartitions hands out a newer generation that fences the previous owner', async () => {
      const consumer = uniqueName('claim');
      await db.transaction((tx) => saveOffsets(tx, consumer, 't', new Map([[0, 10n], [1, 11n]]), 3));
      const claim = await claimPartitions(db, consumer, 't', [0, 2]);
      assert.equal(claim.generation, 4);
      assert.deepEqual(claim.offsets, new Map([[0, 10n]]));
      await assert.rejects(db.transaction((tx) => saveOffsets(tx, consumer, 't', new Map([[0, 12n]]), 3)), (e) => isTickflowError(e, 'FENCED'));
      await db.transaction((tx) => saveOffsets(tx, consumer, 't', new Map([[1, 12n]]), 3)); // partition 1 was not claimed
      await db.transaction((tx) => saveOffsets(tx, consumer, 't', new Map([[0, 20n], [2, 1n]]), claim.generation));
      assert.deepEqual(await loadOffsets(db, consumer, 't'), new Map([[0, 20n], [1, 12n], [2, 1n]]));
    });

    it('lists stored offsets for monitoring', async () => {
      const consumer = uniqueName('list');
      await db.transaction((tx) => saveOffsets(tx, consumer, 'b', new Map([[1, BIG]]), 2));
      await db.transaction((tx) => saveOffsets(tx, consumer, 'a', new Map([[0, 3n]]), 1));
      const mine = (await listStoredOffsets(db)).filter((o) => o.consumer === consumer);
      assert.deepEqual(mine.map(({ updatedAt: _, ...rest }) => rest), [
        { consumer, topic: 'a', partition: 0, nextOffset: 3n, generation: 1 },
        { consumer, topic: 'b', partition: 1, nextOffset: BIG, generation: 2 },
      ]);
      assert.ok(mine[0].updatedAt instanceof Date);
    });
  });
}
