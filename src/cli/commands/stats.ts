import { describeRule } from '../../core/outliers.ts';
import type { OutlierRule } from '../../core/outliers.ts';
import { computeStats } from '../../pipelines/prices-stats.ts';
import type { StatsReport } from '../../pipelines/prices-stats.ts';
import { alias, defineCommand } from '../command.ts';
import { bool, duration, int, num, oneOf, str } from '../flags.ts';
import { stdioLog } from '../stdio-log.ts';
import { MAX_RECORD_BYTES_FLAG, maxRecordBytes } from '../max-record-bytes.ts';
import { progressBar } from '../progress.ts';
import { capYoungGeneration } from '../young-generation.ts';

export const command = defineCommand({
  name: ['stats'],
  summary: 'Batch statistics and outliers over everything in the prices topic now',
  description: [
    'Snapshots the end offsets at start and reads every partition from its earliest offset up to',
    'them: the answer never depends on committed offsets, and a re-run gives the same answer.',
    'Prints the message count; per symbol count, min, max, mean and SAMPLE standard deviation',
    '(n − 1; --population for n); and the outliers (ts, symbol, price) by the chosen rule.',
    'Malformed messages (by the rules of docs/prices.md: reasons empty, not-json, not-an-object,',
    'bad-ts, bad-symbol, bad-price; too-large over --max-record-bytes, unparsed) are counted and',
    'listed, never fatal. Implausible ones (implausible-price: more than --max-price-ratio away from',
    'the symbol\'s level, which a majority of its first 5 prices sets; implausible-time: more than',
    '--max-time-skew from the partition\'s stream time, which only times the next two records agree',
    'with set) are counted and listed apart, and enter no statistic and no outlier list.',
    'Memory stays flat: the outlier scan keeps only candidate prices (far from their symbol\'s',
    'running mean, ~1% of them), up to --memory-budget; when a price left out could still be an',
    'outlier (statistics that moved over the topic), or past the budget, a second pass re-reads the range.',
  ].join('\n'),
  flags: {
    input: { type: 'string', value: 'TOPIC', default: 'prices', description: 'Topic to read, or - for stdin (JSON Lines, read whole first)' },
    topic: alias('input'),
    rule: { type: 'string', value: 'RULE', default: 'zscore', description: 'Outlier rule: zscore (|p − mean| > Z·stddev) or mad (modified z-score, median/MAD)' },
    z: { type: 'string', value: 'Z', default: '3', description: 'Threshold for the zscore rule' },
    'mad-threshold': { type: 'string', value: 'M', default: '3.5', description: 'Threshold for the mad rule' },
    population: { type: 'boolean', description: 'Use the population standard deviation (n) instead of the sample one (n − 1)' },
    'memory-budget': { type: 'string', value: 'MB', default: '256', description: 'MiB of candidate prices kept for the outlier scan; 0 forces two passes' },
    'ts-field': { type: 'string', value: 'NAME', default: 'ts', description: 'Field holding the event time' },
    'symbol-field': { type: 'string', value: 'NAME', default: 'symbol', description: 'Field holding the symbol' },
    'price-field': { type: 'string', value: 'NAME', default: 'price', description: 'Field holding the price' },
    'max-price-ratio': { type: 'string', value: 'K', default: '10', description: 'A price more than K times above or below its symbol\'s level is implausible: counted apart, in no statistic' },
    'max-time-skew': { type: 'string', value: 'DURATION', default: '10m', description: 'A ts farther than this from its partition\'s stream time is held, then counted or implausible-time (docs/event-time.md)' },
    'strict-ts': { type: 'boolean', description: 'Accept only ts strings "yyyy-mm-dd hh:mm:ss[.fff|.ffffff]" (UTC), as before; by default also T, Z, offsets, 0-9 fractional digits and epoch ms' },
    'max-record-bytes': { ...MAX_RECORD_BYTES_FLAG, description: 'A message whose value is larger is counted invalid (too-large) without being parsed' },
  },
  examples: ['tickflow stats --brokers 127.0.0.1:9092', 'tickflow stats --json --rule mad --brokers 127.0.0.1:9092', 'tickflow stats --z 2.5 --population'],
  configure(values) {
    const kind = oneOf(values, 'rule', ['zscore', 'mad'] as const, 'zscore');
    const rule: OutlierRule = kind === 'zscore'
      ? { kind, threshold: num(values, 'z', 3, { exclusiveMin: 0 }), stddev: bool(values, 'population') ? 'population' : 'sample' }
      : { kind, threshold: num(values, 'mad-threshold', 3.5, { exclusiveMin: 0 }) };
    return {
      topic: str(values, 'input') || 'prices',
      rule,
      memoryBudgetBytes: int(values, 'memory-budget', 256, { min: 0, max: 1 << 20 }) * (1 << 20),
      maxRecordBytes: maxRecordBytes(values),
      fields: { ts: str(values, 'ts-field') ?? 'ts', symbol: str(values, 'symbol-field') ?? 'symbol', price: str(values, 'price-field') ?? 'price' },
      strictTs: bool(values, 'strict-ts'),
      maxPriceRatio: num(values, 'max-price-ratio', 10, { exclusiveMin: 1 }),
      maxTimeSkewMs: duration(values, 'max-time-skew', 600_000, { minMs: 1 }),
    };
  },
  async run({ config, shared, out, signal, openLog }) {
    const log = await stdioLog(await openLog(), { input: config.topic, out });
    // Peak memory that does not grow with the topic (docs/prices.md, "Outliers in flat memory").
    capYoungGeneration();
    const progress = progressBar('read', { unit: 'msgs' });
    const report = await computeStats(log, { ...config, signal, onProgress: (read, total) => progress.update(read, `of ${total}`) });
    progress.finish();
    if (shared.json) {
      const { count, symbols, outliers, invalid, invalidReasons, implausible, implausibleReasons, implausibleSamples } = report;
      // The outliers grow with the topic (58,000 over 10M prices): written a slice at a time,
      // not as one string (docs/prices.md, "Outliers in flat memory").
      const head = JSON.stringify({ count, symbols });
      await write(out, `${head.slice(0, -1)},"outliers":[`);
      for (let i = 0; i < outliers.length; i += OUTLIERS_PER_WRITE) {
        await write(out, (i > 0 ? ',' : '') + outliers.slice(i, i + OUTLIERS_PER_WRITE).map((o) => JSON.stringify(o)).join(','));
      }
      await write(out, `],${JSON.stringify({ invalid, invalidReasons, implausible, implausibleReasons, implausibleSamples }).slice(1)}\n`);
    } else {
      await writeReport(out, report, config.rule);
    }
  },
});

const OUTLIERS_PER_WRITE = 2000;

/** Writes `text`, waiting while the stream's buffer is full. */
function write(out: NodeJS.WritableStream, text: string): Promise<void> {
  return out.write(text) ? Promise.resolve() : new Promise((resolve) => out.once('drain', () => resolve()));
}

function table(header: string[], rows: string[][], right: boolean[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  return [tableLine(header, widths, right), ...rows.map((row) => tableLine(row, widths, right))].join('\n');
}

function tableLine(cells: string[], widths: number[], right: boolean[]): string {
  return cells.map((c, i) => (right[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
}

/** The text report; its outlier table (which grows with the topic) a slice of lines at a time. */
async function writeReport(out: NodeJS.WritableStream, report: StatsReport, rule: OutlierRule): Promise<void> {
  const fixed = (n: number) => (Number.isFinite(n) ? n.toFixed(4) : 'n/a');
  const stddevLabel = rule.kind === 'zscore' && rule.stddev === 'population' ? 'STDDEV(pop)' : 'STDDEV(sample)';
  const { outliers } = report;
  await write(out, `${[
    `messages: ${report.count}   valid: ${report.count - report.invalid - report.implausible}   invalid: ${report.invalid}   implausible: ${report.implausible}`,
    '',
    table(
      ['SYMBOL', 'COUNT', 'MIN', 'MAX', 'MEAN', stddevLabel],
      report.symbols.map((s) => [s.symbol, String(s.count), s.min.toFixed(2), s.max.toFixed(2), fixed(s.mean), fixed(s.stddev)]),
      [false, true, true, true, true, true],
    ),
    '',
    `outliers (${describeRule(rule)}): ${outliers.length}`,
  ].join('\n')}\n`);
  if (outliers.length > 0) {
    // Column widths from one pass over the list, then the rows a slice at a time.
    const widths = [2, 6, 5];
    for (let i = 0; i < outliers.length; i++) widths[2] = Math.max(widths[2]!, outliers.price(i).toFixed(2).length);
    widths[0] = Math.max(widths[0]!, outliers.at(0).ts.length);
    for (const symbol of outliers.symbols) widths[1] = Math.max(widths[1]!, symbol.length);
    const right = [false, false, true];
    await write(out, `${tableLine(['TS', 'SYMBOL', 'PRICE'], widths, right)}\n`);
    for (let i = 0; i < outliers.length; i += OUTLIERS_PER_WRITE) {
      const rows = outliers.slice(i, i + OUTLIERS_PER_WRITE).map((o) => tableLine([o.ts, o.symbol, o.price.toFixed(2)], widths, right));
      await write(out, `${rows.join('\n')}\n`);
    }
  }
  const lines: string[] = [];
  if (report.implausible > 0) {
    lines.push('', `implausible messages (well-formed, in no statistic above): ${report.implausible}`);
    for (const [reason, n] of Object.entries(report.implausibleReasons).sort((a, b) => b[1] - a[1])) lines.push(`  ${String(n).padStart(8)}  ${reason}`);
    lines.push(table(['TS', 'SYMBOL', 'PRICE', 'WHERE', 'WHY'], report.implausibleSamples.map((s) => [s.ts, s.symbol, String(s.price), `${s.partition}@${s.offset}`, s.detail]), [false, false, true, false, false]));
  }
  if (report.invalid > 0) {
    lines.push('', `invalid messages: ${report.invalid}`);
    for (const [reason, n] of Object.entries(report.invalidReasons).sort((a, b) => b[1] - a[1])) lines.push(`  ${String(n).padStart(8)}  ${reason}`);
    lines.push('  first ones: ' + report.invalidSamples.map((s) => `${s.partition}@${s.offset} (${s.reason})`).join(', '));
  }
  if (lines.length > 0) await write(out, `${lines.join('\n')}\n`);
}
