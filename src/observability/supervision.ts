/**
 * Parts of this process that stopped and are being restarted (`tickflow up` supervises
 * its services): reported as problems wherever this process reconciles (the dashboard).
 */
import type { Problem } from './reconciliation.ts';

const down = new Map<string, Problem>();

export function reportPartDown(part: string, message: string): void {
  down.set(part, { where: `tickflow up: ${part}`, message });
}

export function reportPartUp(part: string): void {
  down.delete(part);
}

export function supervisionProblems(): Problem[] {
  return [...down.values()];
}
