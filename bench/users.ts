/**
 * `npm run bench -- users [--frames 1000000] [--brokers 127.0.0.1:9092] [--partitions 3] [--repeat 3]`
 * `npm run bench -- users --time-frames [--frames 200000] [--repeat 5] [--before DIR]`: only
 * unique-users, minute-only against all six granularities (and, with `--before`, minute-only
 * of another checkout), alternating on one replayed topic (below).
 * `npm run bench -- users --delivery [--frames 400000] [--repeat 5]`: only unique-users,
 * `--exactly-once` against `--at-least-once`, as a bounded run and as the service, alternating
 * on one replayed topic (below).
 * `npm run bench -- users --durable [--frames 400000] [--repeat 5] [--database-url URL]`: only
 * the unique-users service (exactly once, all six granularities), without a database against
 * `--database-url` (minute sketches and durable state) at `--state-interval` 5 s and 1 s,
 * alternating on one replayed topic, each run a fresh group.
 *
 * User activity on the real Kafka, every row on the same data in the same run:
 * 1. a file of `--frames` user-tracker frames (~2 KB each: 1M ≈ 2 GB) is generated into a
 *    temporary folder (deleted afterwards);
 * 2. replay of that file into a topic — `tickflow replay` against a plain KafkaJS version
 *    (JSON.parse + send batches of 400), a plain Python confluent-kafka version
 *    (json.loads + produce) and Kafka's kafka-producer-perf-test (the ceiling); peak RSS of
 *    each process is reported (flat memory whatever the file size);
 * 3. unique users per minute over the replayed topic — `tickflow unique-users --until-end`
 *    against a plain KafkaJS version (eachMessage + JSON.parse + a Set per minute), a plain
 *    Python version (json.loads + a set per minute) and kafka-consumer-perf-test, after
 *    one untimed pass that warms the broker up; each runs `--repeat` times, round-robin,
 *    and its median wall time counts;
 * 4. JSON decoding alone, in process: JSON.parse against the root-field scanner.
 * Wall times include process start-up for every row.
 *
 * The KafkaJS baselines live in this file (`node bench/users.ts --baseline NAME ...`); the
 * Python ones are written next to the data.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import kafkajs from 'kafkajs';
import { RootFields } from '../src/core/json-root-fields.ts';
import { UserFrameReader } from '../src/core/user-frame.ts';
import { KafkaLog } from '../src/log/kafka.ts';
import { createDatabaseIfMissing, openDatabase } from '../src/db/open.ts';
import type { Database } from '../src/db/types.ts';
import { KAFKA_LIB, NODE, PYTHON, ROOT, flag, measure, report, roundRobin } from './_lib.ts';
import type { Measured, Row } from './_lib.ts';

const SELF = fileURLToPath(import.meta.url);

export default async function usersBenchmark(args: string[]): Promise<void> {
  if (args.includes('--time-frames')) return timeFramesBenchmark(args);
  if (args.includes('--delivery')) return deliveryBenchmark(args);
  if (args.includes('--durable')) return durableBenchmark(args);
  const frames = Number(flag(args, 'frames', '1000000'));
  const brokers = flag(args, 'brokers', process.env.KAFKA_BROKERS ?? '127.0.0.1:9092');
  const partitions = Number(flag(args, 'partitions', '3'));
  const repeat = Number(flag(args, 'repeat', '3'));
  const id = randomUUID().slice(0, 6);
  const topic = (name: string) => `bench-users-${id}-${name}`;
  const bin = join(ROOT, 'bin/tickflow.js');
  const dir = await mkdtemp(join(tmpdir(), 'tickflow-bench-users-'));
  const file = join(dir, 'frames.jsonl');
  const log = new KafkaLog({ brokers: brokers.split(',') });
  const names = ['tickflow', 'kafkajs', 'python', 'perf'].map(topic);
  await log.createTopics(names.slice(0, 4).map((name) => ({ name, partitions })));
  console.log(`# users benchmark: ${frames.toLocaleString('en-US')} frames, ${partitions} partitions, brokers ${brokers}\n`);

  try {
    const generated = measure(NODE, [bin, 'generate', 'users', '--frames', '--count', String(frames), '--late-share', '0.01', '-o', file]);
    const bytes = (await stat(file)).size;
    const avg = Math.round(bytes / frames) - 1;
    console.log(`generated ${file}: ${(bytes / 1e9).toFixed(2)} GB, ${avg} bytes per frame on average, in ${generated.seconds.toFixed(1)} s\n`);
    const python = join(dir, 'baseline.py');
    await writeFile(python, PYTHON_BASELINES);

    // 1. Replay the file.
    const replayed = measure(NODE, [bin, 'replay', file, '--output', topic('tickflow'), '--brokers', brokers, '--json']);
    const replaySummary = JSON.parse(replayed.stdout) as { records: number; bad: number; recordsPerSecond: number };
    if (replaySummary.records !== frames) throw new Error(`tickflow replay sent ${replaySummary.records} of ${frames}`);
    const replayRows: Row[] = [
      { name: 'kafka-producer-perf-test', messages: frames, bytes: frames * avg, ...pick(measure('java', ['-Xmx512m', '-cp', KAFKA_LIB, 'org.apache.kafka.tools.ProducerPerformance', '--topic', topic('perf'), '--num-records', String(frames), '--record-size', String(avg), '--throughput', '-1', '--producer-props', `bootstrap.servers=${brokers}`, 'acks=all', 'enable.idempotence=true'])) },
      { name: 'plain KafkaJS (JSON.parse + send)', messages: frames, bytes, ...pick(expectCount(measure(NODE, [SELF, '--baseline', 'kafkajs-replay', brokers, topic('kafkajs'), file]), frames)) },
      { name: 'plain Python confluent-kafka (json.loads + produce)', messages: frames, bytes, ...pick(expectCount(measure(PYTHON, [python, 'replay', brokers, topic('python'), file]), frames)) },
      { name: 'tickflow replay', messages: frames, bytes, ...pick(replayed), note: `${replaySummary.recordsPerSecond.toLocaleString('en-US')} frames/s after start-up` },
    ];
    for (const name of names.slice(0, 4)) {
      const count = (await log.offsets(name)).reduce((n, p) => n + Number(p.latest), 0);
      if (count !== frames) throw new Error(`${name} holds ${count} messages, expected ${frames}`);
    }

    // 2. Unique users per minute over the topic tickflow replayed. The replays left ~8 GB of
    // dirty pages: flush them first, so that the readers do not share the cores with the
    // kernel's write-back. One untimed pass warms the broker's fetch path, then every
    // contender runs `--repeat` times, round-robin.
    spawnSync('sync');
    const source = topic('tickflow');
    const consumerPerf = () => measure('java', ['-Xmx512m', '-cp', KAFKA_LIB, 'org.apache.kafka.tools.ConsumerPerformance', '--bootstrap-server', brokers, '--topic', source, '--messages', String(frames), '--timeout', '60000']);
    consumerPerf();
    let run = 0;
    const tickflowRun = () => {
      const suffix = `${run++}`;
      const outputs = ['minutes', 'late', 'dead'].map((name) => topic(`${name}-${suffix}`));
      names.push(...outputs);
      return measure(NODE, [bin, 'unique-users', '--until-end', '--input', source, '--output', outputs[0]!, '--late-topic', outputs[1]!, '--dead-letter-topic', outputs[2]!, '--brokers', brokers, '--json']);
    };
    const [perf, kafkajsRun, pythonRun, counted] = roundRobin(
      [consumerPerf, () => measure(NODE, [SELF, '--baseline', 'kafkajs-unique-users', brokers, source]), () => measure(PYTHON, [python, 'unique-users', brokers, source]), tickflowRun],
      repeat,
      (m, i) => {
        if (i === 1 || i === 2) expectCount(m, frames);
        if (i === 3 && (JSON.parse(m.stdout) as { frames: number }).frames !== frames) throw new Error(`unique-users read ${m.stdout}`);
      },
    );
    const uniqueSummary = JSON.parse(counted!.stdout) as { frames: number; framesPerSecond: number; minutes: number; late: number };
    const uniqueRows: Row[] = [
      { name: 'kafka-consumer-perf-test', messages: frames, bytes, ...pick(perf!) },
      { name: 'plain KafkaJS (eachMessage + JSON.parse + Set per minute)', messages: frames, bytes, ...pick(kafkajsRun!) },
      { name: 'plain Python confluent-kafka (json.loads + set per minute)', messages: frames, bytes, ...pick(pythonRun!) },
      { name: 'tickflow unique-users --until-end', messages: frames, bytes, ...pick(counted!), note: `${uniqueSummary.framesPerSecond.toLocaleString('en-US')} frames/s after start-up, ${uniqueSummary.minutes} minutes, ${uniqueSummary.late} late` },
    ];

    // 3. JSON decoding alone, in process, on the first frames of the file.
    const sample: Buffer[] = [];
    let rest = '';
    for await (const chunk of createReadStream(file, { encoding: 'utf8' })) {
      const lines = (rest + (chunk as string)).split('\n');
      rest = lines.pop()!;
      for (const line of lines) if (sample.length < 100_000) sample.push(Buffer.from(line));
      if (sample.length >= 100_000) break;
    }
    const decoding = decodingRates(sample);

    const out = [
      `# users benchmark: ${frames.toLocaleString('en-US')} frames (${(bytes / 1e9).toFixed(2)} GB), ${partitions} partitions\n`,
      report(`Replay a ${(bytes / 1e9).toFixed(1)} GB JSON Lines file (acks=all, idempotent)`, replayRows, 'plain KafkaJS (JSON.parse + send)'),
      report('Unique users per minute over the same topic', uniqueRows, 'plain KafkaJS (eachMessage + JSON.parse + Set per minute)'),
      decoding,
    ];
    console.log(decoding);
    const ratio = (rows: Row[], a: number, b: number) => (rows[a].messages / rows[a].seconds / (rows[b].messages / rows[b].seconds)).toFixed(2);
    const floors = [
      `replay vs plain KafkaJS: ${ratio(replayRows, 3, 1)}x (floor 3x); vs Python: ${ratio(replayRows, 3, 2)}x (floor > 1x); vs kafka-producer-perf-test: ${ratio(replayRows, 3, 0)}x (target >= 0.5x)`,
      `unique-users vs plain KafkaJS: ${ratio(uniqueRows, 3, 1)}x (floor 3x); vs Python: ${ratio(uniqueRows, 3, 2)}x (floor > 1x); vs kafka-consumer-perf-test: ${ratio(uniqueRows, 3, 0)}x (target >= 0.5x)`,
    ].join('\n');
    console.log(floors);
    out.push(floors);
    if (flag(args, 'markdown', '') !== '') await writeFile(flag(args, 'markdown', ''), `${out.join('\n')}\n`);
  } finally {
    await log.deleteTopics(names).catch(() => undefined);
    await log.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * What the coarser time frames cost: `unique-users --until-end` with `--granularity minute`
 * and with all six, `--repeat` times each, alternating on one topic (generated with 1% late,
 * replayed once), median wall time (process start included) and frames/s after start-up.
 * The minute records of both must be the same.
 */
async function timeFramesBenchmark(args: string[]): Promise<void> {
  const frames = Number(flag(args, 'frames', '200000'));
  const brokers = flag(args, 'brokers', process.env.KAFKA_BROKERS ?? '127.0.0.1:9092');
  const partitions = Number(flag(args, 'partitions', '3'));
  const repeat = Number(flag(args, 'repeat', '5'));
  const id = randomUUID().slice(0, 6);
  const topic = (name: string) => `bench-frames-${id}-${name}`;
  const bin = join(ROOT, 'bin/tickflow.js');
  const dir = await mkdtemp(join(tmpdir(), 'tickflow-bench-frames-'));
  const file = join(dir, 'frames.jsonl');
  const log = new KafkaLog({ brokers: brokers.split(',') });
  const names = [topic('input')];
  try {
    await log.createTopics([{ name: names[0]!, partitions }]);
    measure(NODE, [bin, 'generate', 'users', '--frames', '--count', String(frames), '--late-share', '0.01', '-o', file]);
    measure(NODE, [bin, 'replay', file, '--output', names[0]!, '--brokers', brokers, '--json']);
    spawnSync('sync');
    const before = flag(args, 'before', '');
    const builds = [
      { bin, granularity: ['--granularity', 'minute'] },
      { bin, granularity: ['--granularity', 'minute,hour,day,week,month,year'] },
      ...(before === '' ? [] : [{ bin: join(before, 'bin/tickflow.js'), granularity: [] }]),
    ];
    const contenders = builds.map((build, i) => {
      let run = 0;
      return () => {
        const outputs = ['out', 'late', 'dead'].map((name) => topic(`${name}-${i}-${run++}`));
        names.push(...outputs);
        const m = measure(NODE, [build.bin, 'unique-users', '--until-end', '--input', names[0]!, '--output', outputs[0]!, '--late-topic', outputs[1]!, '--dead-letter-topic', outputs[2]!, ...build.granularity, '--brokers', brokers, '--json']);
        return { ...m, stdout: JSON.stringify({ ...(JSON.parse(m.stdout) as object), output: outputs[0] }) };
      };
    });
    const runs: Measured[][] = builds.map(() => []);
    roundRobin(contenders, repeat, (m, i) => runs[i]!.push(m));
    // The minute records, as the fields minute records always had.
    const minuteRecords = async (m: Measured) => {
      const output = (JSON.parse(m.stdout) as { output: string }).output;
      const values: string[] = [];
      for await (const batch of log.readRange({ topic: output })) {
        for (const r of batch) {
          const record = JSON.parse(r.value!.toString('utf8')) as { granularity?: string; minute: string; start: number; uniqueUsers: number; frames: number; late: number };
          if ((record.granularity ?? 'minute') === 'minute') values.push(JSON.stringify([record.minute, record.start, record.uniqueUsers, record.frames, record.late]));
        }
      }
      return JSON.stringify(values);
    };
    const reference = await minuteRecords(runs[0]![0]!);
    for (const list of runs.slice(1)) if ((await minuteRecords(list[0]!)) !== reference) throw new Error('the minute records differ between the runs');
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
    const rows = runs.map((list, i) => {
      const summaries = list.map((m) => JSON.parse(m.stdout) as { framesPerSecond: number; windows: Record<string, number> });
      return {
        name: i === 2 ? `minute only, ${before}` : `--granularity ${builds[i]!.granularity[1]}`,
        wall: median(list.map((m) => m.seconds)),
        walls: list.map((m) => m.seconds.toFixed(2)).join(', '),
        rate: median(summaries.map((s) => s.framesPerSecond)),
        rss: Math.max(...list.map((m) => m.peakRssMiB)),
        windows: Object.entries(summaries[0]!.windows ?? { minute: (summaries[0] as unknown as { minutes: number }).minutes }).map(([g, n]) => `${n} ${g}`).join(', '),
      };
    });
    console.log(`# unique-users time frames: ${frames.toLocaleString('en-US')} frames, ${partitions} partitions, ${repeat} alternating runs each
`);
    console.log('| run | wall s (runs) | median wall s | frames/s after start-up (median) | peak RSS MiB | records |');
    console.log('| --- | --- | ---: | ---: | ---: | --- |');
    for (const r of rows) console.log(`| ${r.name} | ${r.walls} | ${r.wall.toFixed(2)} | ${r.rate.toLocaleString('en-US')} | ${r.rss.toFixed(0)} | ${r.windows} |`);
    if (rows[2]) console.log(`\nminute-only vs ${before}: wall ${((rows[0]!.wall / rows[2].wall - 1) * 100).toFixed(1)}%, frames/s ${((rows[2].rate / rows[0]!.rate - 1) * 100).toFixed(1)}% (positive: slower)`);
    console.log(`all six vs minute-only: wall ${((rows[1]!.wall / rows[0]!.wall - 1) * 100).toFixed(1)}%, frames/s ${((rows[0]!.rate / rows[1]!.rate - 1) * 100).toFixed(1)}% (target: at most 25% more); minute records identical`);
  } finally {
    await log.deleteTopics(names).catch(() => undefined);
    await log.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * What exactly once costs unique-users: `--exactly-once` (Kafka transactions: window records,
 * side records and the offsets with their resume points, one transaction per commit
 * interval) against `--at-least-once` (output-derived), alternating on one topic (generated
 * with 1% late frames, replayed once), `--repeat` times each:
 * - bounded: `unique-users --until-end --json`, process start included (outputs
 *   in transactions, no offsets: a bounded run stores none);
 * - service: a fresh group each run, from the start until the group's committed offsets
 *   reach the end offsets — every frame read, every minute out (after `--idle-timeout 1s`
 *   of quiet) — then SIGTERM; peak RSS from /proc.
 * The minute records of every run must be the same.
 */
async function deliveryBenchmark(args: string[]): Promise<void> {
  await onReplayedFrames(args, 'delivery', async ({ frames, brokers, partitions, repeat, topic, bin, log, input, names, ends }) => {
    let run = 0;
    const outputs = () => {
      const list = ['out', 'late', 'dead'].map((name) => topic(`${name}-${run++}`));
      names.push(...list);
      return ['--output', list[0]!, '--late-topic', list[1]!, '--dead-letter-topic', list[2]!];
    };
    const bounded = (delivery: string) => (): Measured => {
      const out = outputs();
      const m = measure(NODE, [bin, 'unique-users', '--until-end', '--input', input, ...out, delivery, '--brokers', brokers, '--json']);
      return { ...m, stdout: JSON.stringify({ ...(JSON.parse(m.stdout) as object), output: out[1] }) };
    };
    const service = (delivery: string) => (): Promise<Measured> => {
      const out = outputs();
      return catchUp(log, input, ends, topic(`group-${run}`), [bin, 'unique-users', '--input', input, ...out, '--idle-timeout', '1s', delivery, '--brokers', brokers, '--json'], out[1]!);
    };
    const contenders: Array<{ name: string; run: () => Measured | Promise<Measured> }> = [
      { name: '`--until-end --exactly-once`', run: bounded('--exactly-once') },
      { name: '`--until-end --at-least-once`', run: bounded('--at-least-once') },
      { name: 'service `--exactly-once`', run: service('--exactly-once') },
      { name: 'service `--at-least-once`', run: service('--at-least-once') },
    ];
    const walls = await alternate(log, contenders, repeat, frames, `unique-users exactly once vs at least once: ${frames.toLocaleString('en-US')} frames, ${partitions} partitions, ${repeat} alternating runs each`);
    const cost = (a: number, b: number) => `${((walls[a]! / walls[b]! - 1) * 100).toFixed(1)}%`;
    console.log(`\nexactly once vs at least once (median wall, positive: slower): bounded ${cost(0, 1)}, service ${cost(2, 3)}; minute records identical in every run`);
  });
}

function decodingRates(sample: Buffer[]): string {
  const bytes = sample.reduce((n, b) => n + b.length, 0);
  const time = (work: () => void) => {
    work(); // warm up
    const started = performance.now();
    work();
    return (performance.now() - started) / 1000;
  };
  const parse = time(() => {
    for (const b of sample) JSON.parse(b.toString('utf8'));
  });
  const decode = (b: Uint8Array, s: number, e: number) => (b as Buffer).toString('utf8', s, e);
  const fast = new UserFrameReader({ decode, validateStrings: false });
  const strict = new UserFrameReader({ decode });
  const validate = new RootFields([]);
  const scan = time(() => {
    for (const b of sample) fast.read(b);
  });
  const scanStrict = time(() => {
    for (const b of sample) strict.read(b);
  });
  const check = time(() => {
    for (const b of sample) validate.scan(b);
  });
  const rate = (seconds: number) => `${Math.round(sample.length / seconds).toLocaleString('en-US')} frames/s (${(bytes / seconds / 1e6).toFixed(0)} MB/s)`;
  return [
    `### JSON decoding alone (${sample.length.toLocaleString('en-US')} frames in memory)`,
    '',
    `- JSON.parse (Buffer → string → object): ${rate(parse)}`,
    `- root uid/ts scanner, string contents skipped (unique-users default): ${rate(scan)} — ${(parse / scan).toFixed(1)}x JSON.parse`,
    `- root uid/ts scanner, every byte validated (unique-users --strict): ${rate(scanStrict)} — ${(parse / scanStrict).toFixed(1)}x`,
    `- strict validation only (what replay checks per record): ${rate(check)} — ${(parse / check).toFixed(1)}x`,
    '',
  ].join('\n');
}

/** One topic of generated frames replayed, shared by the unique-users-only benchmarks. */
interface ReplayedFrames {
  frames: number;
  brokers: string;
  partitions: number;
  repeat: number;
  /** A topic name of this run. */
  topic: (name: string) => string;
  bin: string;
  log: KafkaLog;
  input: string;
  /** Topics to delete at the end (the input and what the runs add). */
  names: string[];
  /** The input's end offsets. */
  ends: ReadonlyMap<number, bigint>;
}

/** Generates `--frames` frames (--late-share 0.01), replays them into a fresh topic, runs `body`, and deletes the topics and the file. */
async function onReplayedFrames(args: string[], name: string, body: (setup: ReplayedFrames) => Promise<void>): Promise<void> {
  const frames = Number(flag(args, 'frames', '400000'));
  const brokers = flag(args, 'brokers', process.env.KAFKA_BROKERS ?? '127.0.0.1:9092');
  const partitions = Number(flag(args, 'partitions', '3'));
  const repeat = Number(flag(args, 'repeat', '5'));
  const id = randomUUID().slice(0, 6);
  const topic = (suffix: string) => `bench-${name}-${id}-${suffix}`;
  const bin = join(ROOT, 'bin/tickflow.js');
  const dir = await mkdtemp(join(tmpdir(), `tickflow-bench-${name}-`));
  const file = join(dir, 'frames.jsonl');
  const log = new KafkaLog({ brokers: brokers.split(',') });
  const input = topic('input');
  const names = [input];
  try {
    await log.createTopics([{ name: input, partitions }]);
    measure(NODE, [bin, 'generate', 'users', '--frames', '--count', String(frames), '--late-share', '0.01', '-o', file]);
    measure(NODE, [bin, 'replay', file, '--output', input, '--brokers', brokers, '--json']);
    spawnSync('sync');
    const ends = new Map((await log.offsets(input)).map((p) => [p.partition, p.latest]));
    await body({ frames, brokers, partitions, repeat, topic, bin, log, input, names, ends });
  } finally {
    await log.deleteTopics(names).catch(() => undefined);
    await log.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Runs each contender `repeat` times, alternating; checks that every run wrote the same
 * window records (the --json summary names its output topic) and prints the table under
 * `title`. Returns each contender's median wall seconds.
 */
async function alternate(log: KafkaLog, contenders: ReadonlyArray<{ name: string; run: () => Measured | Promise<Measured> }>, repeat: number, frames: number, title: string): Promise<number[]> {
  const runs: Measured[][] = contenders.map(() => []);
  for (let round = 0; round < repeat; round++) for (const [i, c] of contenders.entries()) runs[i]!.push(await c.run());
  const records = async (m: Measured) => {
    const output = (JSON.parse(m.stdout) as { output: string }).output;
    const values: string[] = [];
    for await (const batch of log.readRange({ topic: output })) for (const r of batch) values.push(r.value!.toString('utf8'));
    return JSON.stringify(values.sort());
  };
  const reference = await records(runs[0]![0]!);
  for (const list of runs) for (const m of list) if ((await records(m)) !== reference) throw new Error('the window records differ between the runs');
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[(xs.length - 1) >> 1]!;
  console.log(`# ${title}\n`);
  console.log('| run | wall s (runs) | median wall s | frames/s (median wall) | peak RSS MiB |');
  console.log('| --- | --- | ---: | ---: | ---: |');
  const walls = runs.map((list) => median(list.map((m) => m.seconds)));
  for (const [i, list] of runs.entries()) {
    console.log(`| ${contenders[i]!.name} | ${list.map((m) => m.seconds.toFixed(2)).join(', ')} | ${walls[i]!.toFixed(2)} | ${Math.round(frames / walls[i]!).toLocaleString('en-US')} | ${Math.max(...list.map((m) => m.peakRssMiB)).toFixed(0)} |`);
  }
  return walls;
}

/**
 * Runs the unique-users service `args` in a fresh `group` until the group's committed offsets
 * reach `ends` (minutes only: every frame read, every minute out), then Ctrl-C: the seconds
 * from the start, peak RSS, and its --json summary with the output topic named. `byRead`:
 * until the read positions the offsets' metadata carries reach `ends` (with coarser windows
 * an offset stays at the first frame of the oldest open one), then `settleMs` more (not
 * timed) for the idle flush of the minutes.
 */
async function catchUp(log: KafkaLog, input: string, ends: ReadonlyMap<number, bigint>, group: string, args: string[], output: string, byRead = false, settleMs = 0): Promise<Measured> {
  const started = performance.now();
  const child = spawn(NODE, [...args, '--group', group], { cwd: ROOT, env: { ...process.env, LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  for (;;) {
    // Exactly once, a partition's offset stays at the first frame its oldest open window needs (a year's, with years):
    // its metadata says how far it is read.
    const committed = await log.committedWithMetadata(group, input).catch(() => new Map<number, { offset: bigint; metadata?: string | null }>());
    const read = (p: number) => {
      const c = committed.get(p);
      if (c === undefined) return -1n;
      const position = byRead ? (JSON.parse(c.metadata || '{}') as { read?: string }).read : undefined;
      return position === undefined ? c.offset : BigInt(position);
    };
    if ([...ends].every(([p, end]) => read(p) >= end)) break;
    if (child.exitCode !== null || performance.now() - started > 600_000) throw new Error(`unique-users ${args.slice(2).join(' ')} did not catch up: ${stderr.slice(-2000)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const seconds = (performance.now() - started) / 1000;
  await new Promise((resolve) => setTimeout(resolve, settleMs));
  const peak = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1];
  child.kill('SIGTERM');
  if ((await exited) !== 0) throw new Error(`unique-users ${args.slice(2).join(' ')} exited badly: ${stderr.slice(-2000)}`);
  return { seconds, peakRssMiB: Number(peak ?? 0) / 1024, stdout: JSON.stringify({ ...(JSON.parse(stdout) as object), output }), stderr };
}

/** unique-users service, exactly once, all six granularities: no database against --database-url (sketches and durable state) at two state intervals. */
async function durableBenchmark(args: string[]): Promise<void> {
  const url = flag(args, 'database-url', process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/tickflow_bench_durable');
  await createDatabaseIfMissing(url);
  const db = await openDatabase({ url });
  try {
    await onReplayedFrames(args, 'durable', (setup) => durableRuns(setup, db, url));
  } finally {
    await db.close();
  }
}

async function durableRuns({ frames, brokers, partitions, repeat, topic, bin, log, input, names, ends }: ReplayedFrames, db: Database, url: string): Promise<void> {
  let run = 0;
  const groups: string[] = [];
  const service = (extra: string[]) => (): Promise<Measured> => {
    const list = ['out', 'late', 'dead'].map((name) => topic(`${name}-${run}`));
    const group = topic(`group-${run++}`);
    names.push(...list);
    groups.push(group);
    return catchUp(log, input, ends, group, [bin, 'unique-users', '--input', input, '--output', list[0]!, '--late-topic', list[1]!, '--dead-letter-topic', list[2]!,
      '--granularity', 'minute,hour,day,week,month,year', '--idle-timeout', '1s', '--brokers', brokers, '--json', ...extra], list[0]!, true, 4000);
  };
  const contenders = [
    { name: 'no database', run: service([]) },
    { name: '`--database-url --state-interval 5s`', run: service(['--database-url', url, '--state-interval', '5s']) },
    { name: '`--database-url --state-interval 1s`', run: service(['--database-url', url, '--state-interval', '1s']) },
  ];
  const walls = await alternate(log, contenders, repeat, frames, `unique-users service, exactly once, six granularities: ${frames.toLocaleString('en-US')} frames, ${partitions} partitions, ${repeat} alternating runs each`);
  const { rows } = await db.query<{ n: string; bytes: string; deltas: string }>(
    'SELECT count(*) AS n, coalesce(sum(octet_length(state)), 0) AS bytes, count(parent_id) AS deltas FROM unique_users_state WHERE consumer_group = ANY($1::text[])', [groups]);
  const cost = (a: number) => `${((walls[a]! / walls[0]! - 1) * 100).toFixed(1)}%`;
  console.log(`\n--database-url against none (median wall, positive: slower): 5s ${cost(1)}, 1s ${cost(2)}; window records identical in every run; snapshots left in the table: ${rows[0]!.n} (${rows[0]!.deltas} deltas, ${(Number(rows[0]!.bytes) / 1024).toFixed(0)} KiB)`);
  await db.query('DELETE FROM unique_users_state WHERE consumer_group = ANY($1::text[])', [groups]);
}

function pick(m: Measured) {
  return { seconds: m.seconds, peakRssMiB: m.peakRssMiB, ...(m.runs ? { runs: m.runs } : {}) };
}

function expectCount(m: Measured, frames: number): Measured {
  const count = (JSON.parse(m.stdout.trim().split('\n').pop()!) as { count: number }).count;
  if (count !== frames) throw new Error(`baseline counted ${count}, expected ${frames}`);
  return m;
}

// ---------------------------------------------------------------- baselines

/**
 * What a user would write with KafkaJS: read lines, check they are JSON, send batches of
 * 400 (~800 KB: the broker takes at most 1 MB per batch). Lines are split on \n by hand:
 * node:readline also breaks lines at U+2028, which JSON strings may hold unescaped.
 */
async function kafkajsReplay(brokers: string, topic: string, file: string): Promise<void> {
  const kafka = new kafkajs.Kafka({ clientId: 'bench-kafkajs-replay', brokers: brokers.split(','), logLevel: kafkajs.logLevel.NOTHING });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  let count = 0;
  let bad = 0;
  let messages: { value: string }[] = [];
  let rest = '';
  const take = async (line: string) => {
    if (line.trim() === '') return;
    try {
      JSON.parse(line);
    } catch {
      bad++;
      return;
    }
    messages.push({ value: line });
    if (messages.length === 400) {
      await producer.send({ topic, acks: -1, messages });
      count += messages.length;
      messages = [];
    }
  };
  for await (const chunk of createReadStream(file, { encoding: 'utf8' })) {
    const lines = (rest + (chunk as string)).split('\n');
    rest = lines.pop()!;
    for (const line of lines) await take(line);
  }
  await take(rest);
  if (messages.length > 0) await producer.send({ topic, acks: -1, messages });
  count += messages.length;
  await producer.disconnect();
  console.log(JSON.stringify({ count, bad }));
}

/** What a user would write with KafkaJS: eachMessage, JSON.parse, a Set of uids per minute. */
async function kafkajsUniqueUsers(brokers: string, topic: string): Promise<void> {
  const kafka = new kafkajs.Kafka({ clientId: 'bench-kafkajs-unique', brokers: brokers.split(','), logLevel: kafkajs.logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  const ends = await admin.fetchTopicOffsets(topic);
  await admin.disconnect();
  const total = ends.reduce((n, p) => n + Number(p.high) - Number(p.low), 0);
  let remaining = total;
  const minutes = new Map<number, Set<string>>();
  const consumer = kafka.consumer({ groupId: `bench-kafkajs-${Date.now()}`, maxBytes: 64 << 20 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await new Promise<void>((resolve) => {
    void consumer.run({
      eachMessage: async ({ message }) => {
        try {
          const frame = JSON.parse(message.value!.toString()) as { uid?: unknown; ts?: unknown };
          if (typeof frame.uid === 'string') {
            const minute = Math.floor(Number(frame.ts) / 60);
            let users = minutes.get(minute);
            if (!users) minutes.set(minute, (users = new Set()));
            users.add(frame.uid);
          }
        } catch {
          // not JSON: skipped
        }
        if (--remaining === 0) resolve();
      },
    });
  });
  await consumer.disconnect();
  console.log(JSON.stringify({ count: total, minutes: minutes.size }));
}

const PYTHON_BASELINES = `"""Plain confluent-kafka versions of replay and unique-users (written by bench/users.ts).
Usage: /usr/bin/python3 baseline.py replay BROKERS TOPIC FILE | unique-users BROKERS TOPIC"""
import json
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition


def replay(brokers, topic, path):
    producer = Producer({"bootstrap.servers": brokers, "enable.idempotence": True, "acks": "all", "linger.ms": 5})
    count = bad = 0
    with open(path, "rb") as lines:
        for line in lines:
            line = line.rstrip(b"\\r\\n")
            if not line.strip():
                continue
            try:
                json.loads(line)
            except ValueError:
                bad += 1
                continue
            while True:
                try:
                    producer.produce(topic, value=line)
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
            count += 1
    producer.flush()
    print(json.dumps({"count": count, "bad": bad}))


def unique_users(brokers, topic):
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": f"bench-python-{time.time()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    meta = consumer.list_topics(topic, timeout=10)
    total = 0
    for p in meta.topics[topic].partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        total += high - low
    remaining = total
    consumer.subscribe([topic])
    minutes = {}
    while remaining > 0:
        for msg in consumer.consume(num_messages=10000, timeout=1.0):
            if msg.error():
                continue
            remaining -= 1
            try:
                frame = json.loads(msg.value())
            except ValueError:
                continue
            uid = frame.get("uid") if isinstance(frame, dict) else None
            if isinstance(uid, str):
                minutes.setdefault(int(float(frame.get("ts")) // 60), set()).add(uid)
    consumer.close()
    print(json.dumps({"count": total, "minutes": len(minutes)}))


if sys.argv[1] == "replay":
    replay(sys.argv[2], sys.argv[3], sys.argv[4])
else:
    unique_users(sys.argv[2], sys.argv[3])
`;

if (import.meta.main) {
  const [mode, name, ...rest] = process.argv.slice(2);
  if (mode !== '--baseline') {
    await usersBenchmark(process.argv.slice(2));
  } else if (name === 'kafkajs-replay') {
    await kafkajsReplay(rest[0], rest[1], rest[2]);
  } else if (name === 'kafkajs-unique-users') {
    await kafkajsUniqueUsers(rest[0], rest[1]);
  } else {
    throw new Error(`unknown baseline ${name}`);
  }
}
