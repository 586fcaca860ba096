/**
 * The fault table: every fault test appends one result line to a file (JSON Lines, path
 * in TICKFLOW_FAULTS_RESULTS, set by the global setup); the global teardown prints them
 * as one table, fault × pipeline.
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';

export interface FaultResult {
  fault: string;
  pipeline: string;
  /** No process exited on its own before its work was done (a bounded run exited 0). */
  survived: boolean;
  /** Seconds from the fault until the pipeline moved again after its longest stall. */
  progressAgainSeconds: number | null;
  /** The whole run, start to result. */
  totalSeconds: number;
  /** The result equals the recomputation (null: not reached). */
  exact: boolean | null;
  /** What went wrong, in one line, when something did. */
  note?: string;
}

export function resultsFile(): string | undefined {
  return process.env.TICKFLOW_FAULTS_RESULTS || undefined;
}

export function appendResult(result: FaultResult): void {
  const file = resultsFile();
  if (file) appendFileSync(file, `${JSON.stringify(result)}\n`);
}

export function readResults(file: string): FaultResult[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as FaultResult);
}

const yesNo = (value: boolean | null) => (value === null ? '-' : value ? 'yes' : 'NO');
const seconds = (value: number | null) => (value === null ? '-' : `${value.toFixed(1)} s`);

export function formatTable(results: readonly FaultResult[]): string {
  const header = ['FAULT', 'PIPELINE', 'SURVIVED', 'PROGRESS AGAIN AFTER', 'TOTAL', 'EXACT', 'NOTE'];
  const note = (text = '') => (text.length > 140 ? `${text.slice(0, 139)}…` : text);
  const rows = results.map((r) => [r.fault, r.pipeline, yesNo(r.survived), seconds(r.progressAgainSeconds), seconds(r.totalSeconds), yesNo(r.exact), note(r.note)]);
  const right = [false, false, false, true, true, false, false];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (right[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  const failed = results.filter((r) => !r.survived || r.exact !== true).length;
  return [
    `fault table: ${results.length} runs, ${results.length - failed} survived with exact results${failed > 0 ? `, ${failed} did not` : ''}`,
    line(header),
    ...rows.map(line),
  ].join('\n');
}
