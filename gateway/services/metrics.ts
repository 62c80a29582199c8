// Counters and gauges, rendered as Prometheus text for the control socket.
export interface Metrics {
  inc(name: string, by?: number, labels?: Readonly<Record<string, string>>): void;
  set(name: string, value: number, labels?: Readonly<Record<string, string>>): void;
  get(name: string, labels?: Readonly<Record<string, string>>): number;
  render(): string;
}

function key(name: string, labels?: Readonly<Record<string, string>>): string {
  if (!labels) return name;
  const parts = Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`))}"`);
  return parts.length ? `${name}{${parts.join(',')}}` : name;
}

export function createMetrics(prefix = 'knockgw_'): Metrics {
  const values = new Map<string, number>();
  const kinds = new Map<string, 'counter' | 'gauge'>();
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
    render() {
      const lines: string[] = [];
      for (const [name, kind] of [...kinds].sort(([a], [b]) => a.localeCompare(b))) {
        lines.push(`# TYPE ${prefix}${name} ${kind}`);
        for (const [k, v] of values) if (k === prefix + name || k.startsWith(`${prefix}${name}{`)) lines.push(`${k} ${v}`);
      }
      return `${lines.join('\n')}\n`;
    },
  };
}
