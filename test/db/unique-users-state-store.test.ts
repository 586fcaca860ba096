/**
 * The durable-state store of unique-users (table unique_users_state) on real PostgreSQL and
 * on PGlite: a snapshot reads back with the chain of deltas it builds on, oldest first; a
 * chain with a link missing reads as none; writing a snapshot keeps the chain of the one
 * written before it (a crash before its Kafka commit resumes from that one) and deletes older
 * snapshots of the same partition set only, never another member's.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { readStateChain, readStateSnapshot, writeStateSnapshot } from '../../src/db/unique-users-state-store.ts';
import type { StateSnapshotRow } from '../../src/db/unique-users-state-store.ts';
import type { Database } from '../../src/db/types.ts';
import { allBackends, uniqueName } from './backends.ts';

for (const backend of allBackends()) {
  describe(`unique-users state store (${backend.name})`, () => {
    after(() => backend.cleanup());

    it('reads a snapshot with its chain, keeps the previous chain, deletes older ones of the same partitions only', async () => {
      const db: Database = await backend.open();
      try {
        const group = uniqueName('uu-state');
        const row = (id: string, parent: string | null, keepFrom: string | null, partitions = [0, 1]): StateSnapshotRow => ({
          group, topic: 'frames', id, positions: new Map(partitions.map((p) => [p, BigInt(id.length * 10 + p)])), windows: 1, state: new TextEncoder().encode(`state of ${id}`), parent, keepFrom,
        });
        const ids = async () => (await db.query<{ snapshot_id: string }>('SELECT snapshot_id FROM unique_users_state WHERE consumer_group = $1 ORDER BY seq', [group])).rows.map((r) => r.snapshot_id);
        const chain = async (id: string) => (await readStateChain(db, group, 'frames', id))?.map((s) => `${s.id}:${new TextDecoder().decode(s.state)}`) ?? null;

        // Another member's snapshot (partitions 2, 3): never deleted by this writer.
        await writeStateSnapshot(db, row('other', null, null, [2, 3]));
        await writeStateSnapshot(db, row('a', null, null));
        await writeStateSnapshot(db, row('b', 'a', 'a'));
        await writeStateSnapshot(db, row('c', 'b', 'a'));
        assert.deepEqual(await chain('c'), ['a:state of a', 'b:state of b', 'c:state of c']);
        assert.deepEqual((await readStateSnapshot(db, group, 'frames', 'c'))?.parent, 'b');
        // A full snapshot keeps the chain of the one before it (c, on a).
        await writeStateSnapshot(db, row('d', null, 'a'));
        assert.deepEqual(await ids(), ['other', 'a', 'b', 'c', 'd']);
        // The next one (a delta on d) no longer needs a..c: d was named by a commit before it was taken.
        await writeStateSnapshot(db, row('e', 'd', 'd'));
        assert.deepEqual(await ids(), ['other', 'd', 'e']);
        assert.deepEqual(await chain('e'), ['d:state of d', 'e:state of e']);
        assert.equal(await chain('c'), null, 'gone');
        // Written again (a retried transaction), a snapshot replaces itself.
        await writeStateSnapshot(db, { ...row('e', 'd', 'd'), state: new TextEncoder().encode('again') });
        assert.deepEqual(await chain('e'), ['d:state of d', 'e:again']);
        // A link missing: the chain reads as none.
        await db.query('DELETE FROM unique_users_state WHERE consumer_group = $1 AND snapshot_id = $2', [group, 'd']);
        assert.equal(await chain('e'), null);
        assert.deepEqual(await chain('other'), ['other:state of other']);
      } finally {
        await db.close();
      }
    });
  });
}
