/**
 * A PostgreSQL server of the test's own — initdb into a temporary directory, pg_ctl on a
 * free port — for tests that restart it or kill it, which they must never do to a shared
 * server. Binaries: PG_BIN, else the newest /usr/lib/postgresql/<version>/bin, else PATH.
 * As root (CI containers), the server runs as the `postgres` user, as PostgreSQL requires.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';

/** What a test process needs to reach and control a server another process started. */
export interface PostgresServerState {
  bin: string;
  dir: string;
  dataDir: string;
  logFile: string;
  port: number;
  /** uid/gid the server runs as, when this process is root. */
  user?: { uid: number; gid: number };
}

export class PostgresServer {
  readonly state: PostgresServerState;

  constructor(state: PostgresServerState) {
    this.state = state;
  }

  get port(): number {
    return this.state.port;
  }

  /** A URL of a database on this server (trust auth, user postgres). */
  url(database = 'postgres'): string {
    return `postgres://postgres@127.0.0.1:${this.state.port}/${encodeURIComponent(database)}`;
  }

  /** Creates a database (once) and returns its URL. */
  async createDatabase(name: string): Promise<string> {
    const client = new pg.Client({ connectionString: this.url() });
    client.on('error', () => undefined);
    await client.connect();
    try {
      await client.query(`CREATE DATABASE "${name.replace(/"/g, '""')}"`);
    } finally {
      await client.end();
    }
    return this.url(name);
  }

  /** The postmaster's pid (first line of postmaster.pid), while it runs. */
  postmasterPid(): number | undefined {
    const file = join(this.state.dataDir, 'postmaster.pid');
    if (!existsSync(file)) return undefined;
    const pid = Number(readFileSync(file, 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 && alive(pid) ? pid : undefined;
  }

  async start(): Promise<void> {
    // After a kill -9 the old backends hold the shared memory until they notice their
    // postmaster is gone; the new postmaster refuses to start until then, so try again.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const result = await this.#pgCtl(['start', '-w', '-t', '60', '-l', this.state.logFile]);
      if (result.code === 0) return;
      if (Date.now() > deadline) throw new Error(`pg_ctl start failed (exit ${result.code}): ${result.output.trim()}\n${this.logTail()}`);
      await sleep(500);
    }
  }

  /** `pg_ctl restart -m fast`: backends are terminated, the server comes back on the same port. */
  async restart(): Promise<void> {
    const result = await this.#pgCtl(['restart', '-m', 'fast', '-w', '-t', '60', '-l', this.state.logFile]);
    if (result.code !== 0) throw new Error(`pg_ctl restart failed (exit ${result.code}): ${result.output.trim()}\n${this.logTail()}`);
  }

  /** kill -9 of the postmaster only (its backends notice and exit by themselves). */
  async kill(): Promise<number> {
    const pid = this.postmasterPid();
    if (pid === undefined) throw new Error('PostgreSQL is not running');
    process.kill(pid, 'SIGKILL');
    while (alive(pid)) await sleep(20);
    return pid;
  }

  async stop(): Promise<void> {
    if (this.postmasterPid() === undefined) return;
    await this.#pgCtl(['stop', '-m', 'immediate', '-w', '-t', '30']);
  }

  /** Stops the server and deletes its files. */
  async destroy(): Promise<void> {
    await this.stop().catch(() => undefined);
    rmSync(this.state.dir, { recursive: true, force: true });
  }

  logTail(lines = 20): string {
    if (!existsSync(this.state.logFile)) return '(no server log)';
    return readFileSync(this.state.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  }

  #pgCtl(args: string[]): Promise<{ code: number; output: string }> {
    return run(join(this.state.bin, 'pg_ctl'), ['-D', this.state.dataDir, ...args], this.state.user);
  }
}

/** initdb + pg_ctl start on a free port, in a new temporary directory. */
export async function startPostgresServer(label = 'tickflow-pg'): Promise<PostgresServer> {
  const bin = postgresBin();
  const user = process.getuid?.() === 0 ? postgresUser() : undefined;
  const dir = mkdtempSync(join(tmpdir(), `${label}-`));
  const dataDir = join(dir, 'data');
  if (user) chownSync(dir, user.uid, user.gid);
  const init = await run(join(bin, 'initdb'), ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-locale', '--no-sync'], user);
  if (init.code !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`initdb failed (exit ${init.code}): ${init.output.trim()}`);
  }
  const port = await freePort();
  appendFileSync(
    join(dataDir, 'postgresql.conf'),
    [
      '',
      '# tickflow test server',
      `port = ${port}`,
      "listen_addresses = '127.0.0.1'",
      "unix_socket_directories = ''",
      // Kills here are of processes, never of the machine: the OS keeps what was written.
      'fsync = off',
      'max_connections = 200',
      'shared_buffers = 32MB',
      '',
    ].join('\n'),
  );
  const server = new PostgresServer({ bin, dir, dataDir, logFile: join(dir, 'server.log'), port, user });
  if (user) writeFileSync(server.state.logFile, '');
  if (user) chownSync(server.state.logFile, user.uid, user.gid);
  await server.start();
  return server;
}

function postgresBin(): string {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const versions = readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a));
    if (versions.length > 0) return join(root, versions[0], 'bin');
  }
  const found = spawnSync('sh', ['-c', 'command -v initdb'], { encoding: 'utf8' });
  if (found.status === 0 && found.stdout.trim()) return join(found.stdout.trim(), '..');
  throw new Error('PostgreSQL server binaries (initdb, pg_ctl) not found: install postgresql or set PG_BIN');
}

function postgresUser(): { uid: number; gid: number } {
  const uid = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  if (uid.status !== 0 || gid.status !== 0) throw new Error('running as root, but there is no postgres user to run a PostgreSQL server as');
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

function run(cmd: string, args: string[], user?: { uid: number; gid: number }): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    // pg_ctl start leaves the server running with our pipes unless its output goes to -l.
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: tmpdir(), ...(user ?? {}) });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, output }));
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A port nothing listens on now: bind an ephemeral one, then release it. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}
