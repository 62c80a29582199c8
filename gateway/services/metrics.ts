// The daemon's Prometheus metrics through prom-client, one registry per gateway (tests build
// many). Names, help and labels come from metrics-catalog.ts; a name not in it does not compile.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry, type Metric } from 'prom-client';
import { METRICS, PREFIX, type CounterName, type GaugeName, type HistogramName, type MetricName } from './metrics-catalog.ts';

type Labels = Readonly<Record<string, string>>;

export interface Metrics {
  inc(name: CounterName, by?: number, labels?: Labels): void;
  /**
   * A counter kept elsewhere as a running total (the knock machine's counters, the cloud sync's
   * totals): exported as the increase since the last call, so the series stays a counter.
   */
  total(name: CounterName, value: number, labels?: Labels): void;
  set(name: GaugeName, value: number, labels?: Labels): void;
  observe(name: HistogramName, seconds: number, labels?: Labels): void;
  /** Runs before every scrape: gauges read from a component's state (store health, cloud lease). */
  beforeScrape(fn: () => void | Promise<void>): void;
  /** The value of one series (a histogram: its count); 0 when it has none yet. */
  get(name: MetricName, labels?: Labels): Promise<number>;
  render(): Promise<string>;
  readonly contentType: string;
}

export interface MetricsOptions {
  /** Sets knockgw_build_info{version,node}. */
  readonly build?: { readonly version: string; readonly node: string };
  /** The process and Node.js runtime metrics (process_*, nodejs_*): the daemon, not tests. */
  readonly defaults?: boolean;
}

const same = (a: Labels, b: Labels): boolean => {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => String(b[k]) === a[k]);
};

export function createMetrics(opts: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  const metrics = new Map<MetricName, Metric>();
  for (const [name, def] of Object.entries(METRICS) as [MetricName, (typeof METRICS)[MetricName]][]) {
    const base = { name: PREFIX + name, help: def.help, labelNames: 'labels' in def ? [...def.labels] : [], registers: [registry] };
    metrics.set(name, def.type === 'counter' ? new Counter(base) : def.type === 'gauge' ? new Gauge(base) : new Histogram({ ...base, buckets: [...def.buckets] }));
  }
  if (opts.defaults) collectDefaultMetrics({ register: registry });
  const hooks: (() => void | Promise<void>)[] = [];
  const totals = new Map<string, number>();
  const counter = (name: CounterName): Counter => metrics.get(name) as Counter;
  const gauge = (name: GaugeName): Gauge => metrics.get(name) as Gauge;

  const api: Metrics = {
    contentType: registry.contentType,
    inc(name, by = 1, labels = {}) {
      if (by > 0) counter(name).inc(labels, by);
    },
    total(name, value, labels = {}) {
      const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
      const last = totals.get(key) ?? 0;
      totals.set(key, value);
      // A smaller total means its owner started again (a reload): Prometheus sees a counter reset.
      if (value < last) counter(name).remove(labels);
      counter(name).inc(labels, value < last ? value : value - last);
    },
    set(name, value, labels = {}) {
      gauge(name).set(labels, value);
    },
    observe(name, seconds, labels = {}) {
      (metrics.get(name) as Histogram).observe(labels, Math.max(0, seconds));
    },
    beforeScrape(fn) {
      hooks.push(fn);
    },
    async get(name, labels = {}) {
      const values = (await (metrics.get(name) as Metric).get()).values as { value: number; labels: Labels; metricName?: string }[];
      const wanted = METRICS[name].type === 'histogram' ? `${PREFIX}${name}_count` : undefined;
      return values.find((v) => (wanted === undefined || v.metricName === wanted) && same(labels, v.labels))?.value ?? 0;
    },
    async render() {
      for (const fn of hooks) await fn();
      return registry.metrics();
    },
  };
  if (opts.build) api.set('build_info', 1, { version: opts.build.version, node: opts.build.node });
  return api;
}
