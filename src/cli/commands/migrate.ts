import { appliedMigrations, loadMigrations } from '../../db/migrations.ts';
import { defineCommand } from '../command.ts';

export const command = defineCommand({
  name: ['migrate'],
  summary: 'Apply the database migrations and exit (every service also applies them at start)',
  description: 'Useful before starting services that read through a read-only role, and in deployments that migrate as a separate step.',
  flags: {},
  examples: ['tickflow migrate --database-url postgres://postgres@127.0.0.1:5432/tickflow'],
  configure: () => ({}),
  async run({ shared, out, openDatabase }) {
    const db = await openDatabase();
    const rows = await appliedMigrations(db);
    const known = loadMigrations().length;
    if (shared.json) out.write(`${JSON.stringify({ database: db.description, applied: rows, known })}\n`);
    else out.write(`${db.description}: ${rows.length} of ${known} migrations applied (latest ${rows.at(-1)?.version ?? 'none'} ${rows.at(-1)?.name ?? ''})\n`);
  },
});
