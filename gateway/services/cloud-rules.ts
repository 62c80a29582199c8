// The cloud rules knockgw holds, seen from the grants: which rule stands for which grant (status,
// the console), and the grant a rule stands for when only the rule is left (a revoke).
import { parseIp } from '../core/ip.ts';
import type { Grant } from '../core/grant.ts';
import type { CloudRule } from '../ports.ts';

/** One provider's rules as the leader last listed and wrote them. */
export interface HeldRules { readonly provider: string; readonly keyedBy: 'grant' | 'ip'; readonly rules: readonly CloudRule[] }

export interface GrantCloudRule { readonly provider: string; readonly rule: string }

/**
 * The rules that let `grant` through: a provider keyed by address (AWS prefix lists) holds one
 * entry for every grant of that address. null: this node does not lead, so it does not know.
 */
export function rulesOfGrant(grant: Pick<Grant, 'id' | 'ip'>, held: readonly HeldRules[] | null): GrantCloudRule[] | null {
  if (!held) return null;
  return held.flatMap((h) => h.rules.filter((r) => (h.keyedBy === 'ip' ? r.ip === grant.ip : r.grantId === grant.id)).map((r) => ({ provider: h.provider, rule: r.key || 'unnamed' })));
}

/** A revocation handle for a rule whose grant is gone (the adapters revoke by id / address). */
export function ruleGrant(rule: CloudRule): Grant {
  return Object.freeze({
    id: rule.grantId, ip: rule.ip, family: parseIp(rule.ip)?.family ?? (rule.ip.includes(':') ? 6 : 4), ports: [], door: '',
    source: 'manual', createdAt: 0, expiresAt: rule.expiresAt, nodeId: '',
  });
}

export function unique<T>(items: readonly T[], key: (t: T) => string): T[] {
  const seen = new Map<string, T>();
  for (const i of items) if (!seen.has(key(i))) seen.set(key(i), i);
  return [...seen.values()];
}
