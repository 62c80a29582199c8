// Counters, gauges and histograms, rendered as Prometheus text for the control socket.
export interface Metrics {
  inc(name: string, by?: number, labels?: Readonly<Record<string, string>>): void;
  set(name: string, value: number, labels?: Readonly<Record<string, string>>): void;
  get(name: string, labels?: Readonly<Record<string, string>>): number;
  /** Adds one sample (seconds) to a histogram with fixed `buckets` (upper bounds, ascending). */
  observe(name: string, value: number, labels: Readonly<Record<string, string>>, buckets: readonly number[]): void;
  render(): string;
}

function labelText(labels?: Readonly<Record<string, string>>): string {
  if (!labels) return '';
  return Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`))}"`)
    .join(',');
}

function key(name: string, labels?: Readonly<Record<string, string>>): string {
  const parts = labelText(labels);
  return parts ? `${name}{${parts}}` : name;
}

interface Series { readonly labels: string; readonly buckets: readonly number[]; readonly counts: number[]; sum: number; count: number }

export function createMetrics(prefix = 'knockgw_'): Metrics {
  const values = new Map<string, number>();
  const kinds = new Map<string, 'counter' | 'gauge' | 'histogram'>();
  const histograms = new Map<string, Map<string, Series>>();
  return {
    inc(name, by = 1, labels) {
      kinds.set(name, 'counter');
      const k = key(prefix + name, labels);
      values.set(k, (values.get(k) ?? 0) + by);
    },
    set(name, value, labels) {
      kinds.set(name, 'gauge');
      values.set(key(prefix + name, labels), value);
    },
    get(name, labels) {
      return values.get(key(prefix + name, labels)) ?? 0;
    },
    observe(name, value, labels, buckets) {
      kinds.set(name, 'histogram');
      let byLabels = histograms.get(name);
      if (!byLabels) histograms.set(name, (byLabels = new Map<string, Series>()));
      const l = labelText(labels);
      let s = byLabels.get(l);
      if (!s) byLabels.set(l, (s = { labels: l, buckets, counts: buckets.map(() => 0), sum: 0, count: 0 }));
      // Per bucket, not cumulative: rendering adds them up.
      const i = s.buckets.findIndex((b) => value <= b);
      if (i >= 0) s.counts[i] = (s.counts[i] ?? 0) + 1;
      s.sum += value;
      s.count++;
    },
    render() {
      const lines: string[] = [];
      for (const [name, kind] of [...kinds].sort(([a], [b]) => a.localeCompare(b))) {
        lines.push(`# TYPE ${prefix}${name} ${kind}`);
        if (kind === 'histogram') {
          for (const s of histograms.get(name)?.values() ?? []) {
            const sep = s.labels ? `${s.labels},` : '';
            let acc = 0;
            s.buckets.forEach((b, i) => {
              acc += s.counts[i] ?? 0;
              lines.push(`${prefix}${name}_bucket{${sep}le="${b}"} ${acc}`);
            });
            lines.push(`${prefix}${name}_bucket{${sep}le="+Inf"} ${s.count}`);
            lines.push(`${prefix}${name}_sum${s.labels ? `{${s.labels}}` : ''} ${s.sum}`);
            lines.push(`${prefix}${name}_count${s.labels ? `{${s.labels}}` : ''} ${s.count}`);
          }
          continue;
        }
        for (const [k, v] of values) if (k === prefix + name || k.startsWith(`${prefix}${name}{`)) lines.push(`${k} ${v}`);
      }
      return `${lines.join('\n')}\n`;
    },
  };
}
