// Histograms of the calls the gateway makes to its store and to the cloud APIs, taken at the
// port (the GrantStore, each CloudFirewall) so every adapter is measured the same way and no
// adapter knows about metrics. Everything else passes through unchanged.
import type { CloudFirewall, GrantStore } from '../ports.ts';
import type { Metrics } from './metrics.ts';

type Observe = (op: string, seconds: number, ok: boolean) => void;

function timing<T extends object>(target: T, ops: ReadonlySet<PropertyKey>, observe: Observe): T {
  return new Proxy(target, {
    get(t, prop) {
      const value: unknown = Reflect.get(t, prop, t);
      // A frozen property must come back as it is (a Proxy invariant).
      const own = Reflect.getOwnPropertyDescriptor(t, prop);
      if (typeof value !== 'function' || (own && !own.configurable && !own.writable)) return value;
      const fn = value as (...args: unknown[]) => unknown;
      if (!ops.has(prop)) return fn.bind(t);
      return async (...args: unknown[]) => {
        const started = performance.now();
        let ok = false;
        try {
          const out = await fn.apply(t, args);
          ok = true;
          return out;
        } finally {
          observe(String(prop), (performance.now() - started) / 1000, ok);
        }
      };
    },
  });
}

export function timedStore(store: GrantStore, metrics: Metrics): GrantStore {
  return timing(store, new Set(['put', 'remove', 'list']), (op, s) => metrics.observe('store_round_trip_seconds', s, { op }));
}

export function timedCloud<T extends CloudFirewall>(fw: T, metrics: Metrics): T {
  return timing(fw, new Set(['list', 'grant', 'revoke', 'worldOpen']), (op, s, ok) =>
    metrics.observe('cloud_call_duration_seconds', s, { provider: fw.name, operation: op === 'worldOpen' ? 'world_open' : op, outcome: ok ? 'ok' : 'error' }));
}
