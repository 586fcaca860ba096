import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';

/**
 * Caps V8's young generation at `semiSpaceMiB` per semi-space, for a long read whose peak
 * memory must not depend on the input's size (`stats`).
 *
 * V8 doubles the young generation each time the bytes that survived scavenges since its last
 * growth exceed its size. A read of any length keeps a fetch's records alive across some
 * scavenges, so a long enough one always grows it to V8's maximum (32 MiB semi-spaces, 64 MiB
 * in all): `stats` peaked 30–50 MiB higher over 10M prices than over 1M, while its live heap
 * stayed at ~20 MiB. The maximum is fixed when the process starts (`--max-semi-space-size`),
 * but the growth factor is read at each growth: once the young generation has reached the cap,
 * a factor of 1 keeps it there. Checked every few milliseconds until then; a no-op when the
 * process was started with a smaller maximum.
 */
export function capYoungGeneration(semiSpaceMiB = 16, everyMs = 5): { stop(): void } {
  const limit = 2 * semiSpaceMiB * 1024 * 1024;
  const reached = () => (getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0) >= limit;
  let timer: NodeJS.Timeout | null = null;
  const check = () => {
    if (!reached()) return;
    setFlagsFromString('--semi-space-growth-factor=1');
    stop();
  };
  const stop = () => {
    if (timer) clearInterval(timer);
    timer = null;
  };
  timer = setInterval(check, everyMs);
  timer.unref();
  return { stop };
}
