// The checker's figures as the text `npm run chaos` prints (and bench/RESULTS.md quotes).
import { percentile } from './checker.ts';
import type { ChaosResult } from './drive.ts';
import { FAULT_KINDS } from './faults.ts';

export function formatFigures(r: ChaosResult): string {
  const converged = r.convergence.flatMap((c) => (c.ms === null ? [] : [c.ms]));
  const ms = (v: number | null): string => (v === null ? 'n/a' : `${v} ms`);
  const lines = [
    `chaos run: ${r.seconds} s, seed ${r.seed}, maxStaleness ${r.maxStalenessS} s`,
    `sessions ${r.sessions} (${r.acknowledged} acknowledged), probes ${r.probes}`,
    `lost grants: ${r.lost.length}`,
    ...r.lost.map((v) => `  lost ${v.session} ${v.ip} on ${v.node} at ${new Date(v.at).toISOString()}${v.fault ? ` (after ${v.fault})` : ''}`),
    `zombie grants: ${r.zombies.length}`,
    ...r.zombies.map((v) => `  zombie ${v.session} ${v.ip} on ${v.node} at ${new Date(v.at).toISOString()}${v.fault ? ` (after ${v.fault})` : ''}`),
    `honoured by a killed daemon's kernel past the bound (not counted as zombies): ${r.deadNode} probes`,
    `convergence after heal: p50 ${ms(percentile(converged, 50))}, p99 ${ms(percentile(converged, 99))}, max ${ms(percentile(converged, 100))} over ${converged.length} heals (${r.convergence.length - converged.length} not converged before the next fault)`,
    'faults survived per kind:',
    ...FAULT_KINDS.map((k) => `  ${k.padEnd(18)} ${r.faults[k]?.survived ?? 0}/${r.faults[k]?.exercised ?? 0}`),
  ];
  return `${lines.join('\n')}\n`;
}
