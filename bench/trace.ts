// `npm run bench -- --trace`: the daemon's per-stage histogram (knockgw_packet_stage_seconds,
// services/trace.ts) scraped from its control socket before and after a measurement; the
// difference is that measurement's packets alone. Quantiles are interpolated inside a bucket
// (the buckets are 25-50% apart below 5 ms), so they are estimates at that resolution.
import { TRACE_STAGES } from '../gateway/services/trace.ts';
import { round } from './lib.ts';
import { fmt, table } from './table.ts';

export interface StageRow {
  readonly path: string;
  readonly stage: string;
  readonly count: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly meanMs: number;
}

interface Hist { readonly le: number[]; readonly cum: number[]; sum: number; count: number }

const LINE = /^knockgw_packet_stage_seconds_(bucket|sum|count)\{path="([^"]+)",stage="([^"]+)"(?:,le="([^"]+)")?\} (\S+)$/;

export function parseStages(text: string): Map<string, Hist> {
  const out = new Map<string, Hist>();
  for (const line of text.split('\n')) {
    const m = LINE.exec(line);
    if (!m) continue;
    const [, kind, path, stage, le, value] = m;
    const k = `${path}/${stage}`;
    let h = out.get(k);
    if (!h) out.set(k, (h = { le: [], cum: [], sum: 0, count: 0 }));
    const v = Number(value);
    if (kind === 'sum') h.sum = v;
    else if (kind === 'count') h.count = v;
    else if (le !== undefined && le !== '+Inf') {
      h.le.push(Number(le));
      h.cum.push(v);
    }
  }
  return out;
}

/** Interpolated quantile (seconds) of a cumulative histogram; the last finite bound beyond it. */
function quantile(h: Hist, q: number): number {
  const rank = q * h.count;
  let lo = 0;
  let below = 0;
  for (let i = 0; i < h.le.length; i++) {
    const hi = h.le[i] ?? 0;
    const cum = h.cum[i] ?? 0;
    if (cum >= rank && cum > below) return lo + ((hi - lo) * (rank - below)) / (cum - below);
    lo = hi;
    below = cum;
  }
  return lo;
}

/** The stages of the packets seen between two scrapes. */
export function stageRows(before: string, after: string): StageRow[] {
  const a = parseStages(before);
  const rows: StageRow[] = [];
  for (const [k, h] of parseStages(after)) {
    const b = a.get(k);
    const d: Hist = { le: h.le, cum: h.cum.map((c, i) => c - (b?.cum[i] ?? 0)), sum: h.sum - (b?.sum ?? 0), count: h.count - (b?.count ?? 0) };
    if (d.count <= 0) continue;
    const [path = '', stage = ''] = k.split('/');
    rows.push({ path, stage, count: d.count, p50Ms: round(quantile(d, 0.5) * 1000), p99Ms: round(quantile(d, 0.99) * 1000), meanMs: round((d.sum / d.count) * 1000) });
  }
  const order = (s: string): number => (TRACE_STAGES as readonly string[]).indexOf(s);
  return rows.sort((x, y) => x.path.localeCompare(y.path) || order(x.stage) - order(y.stage));
}

export function renderStages(title: string, rows: readonly StageRow[]): string[] {
  if (rows.length === 0) return [];
  return ['', `${title}: per-stage trace (knockgw_packet_stage_seconds; interpolated in its buckets)`,
    table(['path', 'stage', 'packets', 'p50 ms', 'p99 ms', 'mean ms'], rows.map((r) => [r.path, r.stage, String(r.count), fmt(r.p50Ms), fmt(r.p99Ms), fmt(r.meanMs)]))];
}
