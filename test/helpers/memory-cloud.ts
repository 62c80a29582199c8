// A cloud firewall in memory: what the leader of a fleet writes, without a cloud or a fake server.
// It keeps one rule per grant and counts its calls like the real adapters do.
import type { CloudFirewall, CloudRule } from '../../gateway/ports.ts';

export interface MemoryCloud extends CloudFirewall {
  /** The rules it holds now, by grant id. */
  readonly rules: ReadonlyMap<string, CloudRule>;
  close(): Promise<void>;
}

export function createMemoryCloud(name = 'memory'): MemoryCloud {
  const rules = new Map<string, CloudRule>();
  const calls = { list: 0, grant: 0, revoke: 0 };
  return {
    name,
    rules,
    grant(grants) {
      calls.grant++;
      const made = grants.map((g): CloudRule => ({ key: `rule-${g.id}`, grantId: g.id, ip: g.ip, expiresAt: g.expiresAt }));
      for (const r of made) rules.set(r.grantId, r);
      return Promise.resolve(made);
    },
    revoke(grants) {
      calls.revoke++;
      for (const g of grants) rules.delete(g.id);
      return Promise.resolve();
    },
    list() {
      calls.list++;
      return Promise.resolve([...rules.values()]);
    },
    apiCalls: () => ({ ...calls }),
    close: () => Promise.resolve(),
  };
}
