// GCP per-grant mode: one VPC firewall rule per grant (a grant is one address, so one family:
// IPv4 and IPv6 ranges cannot share a rule), named knockgw-<hash of the grant id>-v4|v6. Rules
// are only inserted and deleted, never patched. Costs one rule of the project's quota per person:
// for those who want one rule per person in the audit log.
import { createHash } from 'node:crypto';
import { kgwError } from '../../../core/errors.ts';
import type { CloudRule } from '../../../ports.ts';
import { decodeMeta, encodeMeta, providerCode, type HostGrant } from '../common.ts';
import { each, RULE_PREFIX, type GcpApi, type GcpModeOps } from './api.ts';

const NAME = /^knockgw-[0-9a-f]{32}-v[46]$/;

/** A valid GCE name ([a-z]([-a-z0-9]{0,61}[a-z0-9])?), the same on every node for the same grant. */
export function ruleName(grantId: string, family: 4 | 6): string {
  return `${RULE_PREFIX}${createHash('sha256').update(grantId).digest('hex').slice(0, 32)}-v${family}`;
}

export function createPerGrantOps(api: GcpApi): GcpModeOps {
  async function insert(hg: HostGrant): Promise<CloudRule> {
    const g = hg.grant;
    const name = ruleName(g.id, hg.family);
    const sourceRanges = [hg.cidr];
    try {
      await api.insert({ name, description: encodeMeta(g.id, g.expiresAt), ports: g.ports, sourceRanges });
    } catch (err) {
      if (providerCode(err) !== 'alreadyExists') throw err;
      // Same name = same grant id; check it really is the same address before calling it done.
      const fw = await api.getExisting(name);
      if (JSON.stringify(fw.sourceRanges ?? []) !== JSON.stringify(sourceRanges)) {
        throw kgwError('KGW_CLOUD_API', `firewall rule ${name} exists with other source ranges (${(fw.sourceRanges ?? []).join(',')})`, { name, providerCode: 'conflict' });
      }
    }
    return { key: name, grantId: g.id, ip: g.ip, expiresAt: g.expiresAt };
  }

  return {
    async grant(hgs) {
      // No listing first: the caller only sends what it knows is missing, and a rule that is
      // there already answers 409, which is success once checked.
      const created: CloudRule[] = [];
      await each(hgs, async (hg) => { created.push(await insert(hg)); });
      return created;
    },
    async revoke(grants) {
      // The name follows from the grant id: no lookup needed, and a rule already gone is success.
      await each(grants, (g) => api.remove(ruleName(g.id, g.family)));
    },
    async list() {
      const out: CloudRule[] = [];
      for (const fw of await api.list(`${RULE_PREFIX}.*`)) {
        const meta = decodeMeta(fw.description ?? undefined);
        const range = fw.sourceRanges?.[0];
        if (!meta || !range || !NAME.test(fw.name)) continue;
        out.push({ key: fw.name, grantId: meta.grantId, ip: range.slice(0, range.indexOf('/')), expiresAt: meta.expiresAt });
      }
      return out;
    },
  };
}
