// GCP VPC firewall rules, in one of two modes (cloud.gcp.mode): aggregated (default: a few
// knockgw rules per door and family, patched; cloud-gcp-aggregated.ts) or per-grant (one rule per
// grant and family; cloud-gcp-per-grant.ts). Both are made of the calls in cloud-gcp-api.ts. The
// adapter also finds rules outside knockgw that open a protected port to the whole Internet.
import type { PortSpec } from '../../../core/grant.ts';
import { kgwError } from '../../../core/errors.ts';
import type { CloudFirewall, WorldOpenRule } from '../../../ports.ts';
import { hostGrants, openedPorts, WORLD_RANGES } from '../common.ts';
import { createGcpApi, GCP_METHODS, type Firewall, type GcpApiOptions } from './api.ts';
import { createAggregatedOps } from './aggregated.ts';
import { createPerGrantOps } from './per-grant.ts';
import { loadGceSdk } from '../sdk.ts';

export { GCP_METHODS, RULE_PREFIX, type GcpMethod } from './api.ts';
export { ruleName } from './per-grant.ts';
export { aggregatedRuleName, GCE_MAX_SOURCE_RANGES } from './aggregated.ts';
export const GCP_PERMISSIONS: readonly string[] = [...new Set(Object.values(GCP_METHODS).flat())].sort();

export interface GcpCloudOptions extends GcpApiOptions {
  /** The ports knockgw protects: a rule outside knockgw opening one of them to the world is reported. */
  readonly protectedPorts: readonly PortSpec[];
  /** Aggregated mode: source ranges per rule (at most Google's documented 5,000; lower in tests). */
  readonly maxRangesPerRule?: number;
}

export interface GcpCloudFirewall extends CloudFirewall {
  stats(): { retries: number; throttled: number };
  close(): Promise<void>;
}

/** `projects/P/global/networks/N` or a URL ending so → { project, name }. */
function networkOf(text: string): { project?: string; name: string } {
  const m = /(?:projects\/([^/]+)\/)?global\/networks\/([^/]+)$/.exec(text);
  if (!m?.[2]) return { name: text.slice(text.lastIndexOf('/') + 1) };
  return m[1] ? { project: m[1], name: m[2] } : { name: m[2] };
}

const portRanges = (ports: readonly string[] | null | undefined): { from: number; to: number }[] =>
  (ports ?? []).map((p) => {
    const [from = '', to = from] = p.split('-');
    return { from: Number(from), to: Number(to) };
  });

export async function createGcpCloudFirewall(opts: GcpCloudOptions): Promise<GcpCloudFirewall> {
  const { config, logger } = opts;
  if (config.targetTags.length > 0 === config.targetServiceAccounts.length > 0) {
    throw kgwError('KGW_CONFIG_INVALID', 'gcp needs exactly one of targetTags or targetServiceAccounts, so knockgw rules apply to the gateway instances only', { targetTags: config.targetTags, targetServiceAccounts: config.targetServiceAccounts });
  }
  const api = createGcpApi(opts, await loadGceSdk());
  const mode = config.mode === 'per-grant'
    ? createPerGrantOps(api)
    : createAggregatedOps(api, { logger, ...(opts.maxRangesPerRule !== undefined ? { maxRangesPerRule: opts.maxRangesPerRule } : {}) });
  const ours = networkOf(api.network);

  /** Applies to the gateway: every instance of the network, or the gateway's tags / service accounts. */
  function reachesGateway(fw: Firewall): boolean {
    const net = networkOf(fw.network ?? '');
    if (net.name !== ours.name || (net.project !== undefined && net.project !== ours.project)) return false;
    const tags = fw.targetTags ?? [], sas = fw.targetServiceAccounts ?? [];
    if (tags.length === 0 && sas.length === 0) return true;
    return tags.some((t) => config.targetTags.includes(t)) || sas.some((s) => config.targetServiceAccounts.includes(s));
  }

  function worldSource(fw: Firewall): string | undefined {
    const ranges = fw.sourceRanges ?? [];
    // No source at all is how GCE spells 0.0.0.0/0 for an ingress rule.
    if (ranges.length === 0 && !fw.sourceTags?.length && !fw.sourceServiceAccounts?.length) return WORLD_RANGES[0];
    return ranges.find((r) => WORLD_RANGES.includes(r));
  }

  return {
    name: 'gcp',
    keyedBy: 'grant',
    async grant(grants) {
      const hgs = hostGrants(grants, { needPorts: true });
      return hgs.length === 0 ? [] : mode.grant(hgs);
    },
    async revoke(grants, rules) {
      if (grants.length > 0 || rules?.length) await mode.revoke(grants, rules);
    },
    list: () => mode.list(),
    async worldOpen() {
      const found: WorldOpenRule[] = [];
      for (const fw of await api.list()) {
        if ((fw.direction ?? 'INGRESS') !== 'INGRESS' || fw.disabled === true || !reachesGateway(fw)) continue;
        const source = worldSource(fw);
        const ports = [...new Set((fw.allowed ?? []).flatMap((a) => openedPorts(opts.protectedPorts, a.IPProtocol ?? '', portRanges(a.ports))))];
        if (!source || ports.length === 0) continue;
        const targets = fw.targetTags?.length ? `tags ${fw.targetTags.join(',')}` : fw.targetServiceAccounts?.length ? `service accounts ${fw.targetServiceAccounts.join(',')}` : 'every instance';
        found.push({
          provider: 'gcp',
          rule: fw.name,
          where: `VPC network ${ours.name} (${targets})`,
          source,
          ports,
          removeCommand: `gcloud compute firewall-rules delete ${fw.name} --project ${config.project}`,
        });
      }
      return found;
    },
    apiCalls: () => ({ ...api.counters.calls }),
    stats: () => ({ retries: api.counters.retries, throttled: api.counters.throttled }),
    close: () => api.close(),
  };
}
