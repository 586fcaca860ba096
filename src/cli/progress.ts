/**
 * A one-line progress display on stderr, redrawn at most every 100 ms, only when stderr is
 * a terminal (CI logs and pipes stay clean). `total` enables the percentage and ETA.
 */
export interface Progress {
  update(done: number, extra?: string): void;
  finish(): void;
}

export function progressBar(label: string, options: { total?: number; unit?: string; stream?: NodeJS.WriteStream } = {}): Progress {
  const stream = options.stream ?? process.stderr;
  if (!stream.isTTY) return { update: () => {}, finish: () => {} };
  const started = Date.now();
  let last = 0;
  let shown = false;
  const render = (done: number, extra = '') => {
    const elapsed = (Date.now() - started) / 1000;
    const rate = elapsed > 0 ? done / elapsed : 0;
    const parts = [`${label} ${formatCount(done)}${options.unit ? ` ${options.unit}` : ''}`, `${formatCount(rate)}/s`];
    if (options.total) {
      const fraction = Math.min(1, done / options.total);
      const width = 24;
      const filled = Math.round(fraction * width);
      parts.unshift(`[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(fraction * 100).toFixed(1).padStart(5)}%`);
      if (rate > 0 && fraction < 1) parts.push(`ETA ${Math.ceil((options.total - done) / rate)}s`);
    }
    if (extra) parts.push(extra);
    stream.write(`\r\x1b[2K${parts.join('  ')}`);
    shown = true;
  };
  let latest = 0;
  let latestExtra = '';
  return {
    update(done, extra) {
      latest = done;
      latestExtra = extra ?? '';
      const now = Date.now();
      if (now - last < 100) return;
      last = now;
      render(done, latestExtra);
    },
    finish() {
      if (shown) {
        render(latest, latestExtra);
        stream.write('\n');
      }
    },
  };
}

export function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return String(Math.round(n));
}

export function formatBytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(2)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(1)} KiB`;
  return `${n} B`;
}

/** An `onSent(sent)` for a long-running generator: logs `message` with the count at most every 10 s. */
export function sentLog(logger: { info(details: object, message: string): void }, message: string): (sent: number) => void {
  let last = Date.now();
  return (sent) => {
    if (Date.now() - last < 10_000) return;
    last = Date.now();
    logger.info({ sent }, message);
  };
}
