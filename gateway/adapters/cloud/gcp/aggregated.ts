// GCP aggregated mode (the default): a few knockgw rules per door, port set and family, each
// holding many single-host source ranges, named knockgw-<hash of door and ports>-<slot>-v4|v6.
// A knock adds its address to a rule with room (one PATCH) instead of inserting a rule, so a
// morning of phones costs a handful of the project's shared firewall-rule quota, not one each.
//
// A firewall has no fingerprint, so there is no compare-and-set: concurrency comes from design.
// Only the lease holder writes (cloud sync runs on the leader only), every write carries the
// rule's whole source list (merge-patch replaces a list whole — never a delta), and a new
// leader lists before it writes. A rule whose list becomes empty is deleted, not disabled nor
// patched empty: an empty sourceRanges means 0.0.0.0/0, and a disabled rule would keep stale
// addresses that re-open the moment someone enables it (and still count against the quota).
import { createHash } from 'node:crypto';
import type { Family } from '../../../core/ip.ts';
import { formatPort, grantId, type Grant, type PortSpec } from '../../../core/grant.ts';
import { kgwError } from '../../../core/errors.ts';
import type { CloudRule, Logger } from '../../../ports.ts';
import { decodeDoorMeta, encodeDoorMeta, laterExpiry, providerCode, type HostGrant } from '../common.ts';
import { each, RULE_PREFIX, type Firewall, type GcpApi, type GcpModeOps } from './api.ts';

/**
 * Google's documented limit: "Maximum number of source IP address ranges per firewall rule:
 * 5,000 … in a VPC firewall rule … IP address ranges are either IPv4 only or IPv6 only. This
 * limit cannot be increased." (Quotas and limits, "Per rule";
 * https://docs.cloud.google.com/network-security-integration/docs/quotas, updated 2026-04-08).
 * Beyond it GCE answers 413 "Value for field 'resource.sourceRanges' is too large".
 */
export const GCE_MAX_SOURCE_RANGES = 5000;
/** Rules per door, port set and family: 16 × 5,000 addresses before knockgw refuses more. */
const MAX_SLOTS = 16;
const NAME = /^knockgw-[0-9a-f]{12}-\d{1,2}-v[46]$/;

/** Rules of one door, port set and family share a hash: ports never change under a rule. */
function groupHash(door: string, ports: readonly PortSpec[]): string {
  const sig = [...ports].map(formatPort).sort().join(',');
  return createHash('sha256').update(`${door}\n${sig}`).digest('hex').slice(0, 12);
}

export function aggregatedRuleName(door: string, ports: readonly PortSpec[], family: Family, slot: number): string {
  return `${RULE_PREFIX}${groupHash(door, ports)}-${slot}-v${family}`;
}

/** What knockgw knows a rule holds (from the last listing and its own writes since). */
interface RuleState {
  readonly name: string;
  readonly door: string;
  ranges: Set<string>;
  /** The latest expiry among its ranges (what the sweeper can know when every daemon died). */
  expiresAt: number | null;
}

const hostRange = (ip: string, family: Family, prefix?: number): string => `${ip}/${prefix ?? (family === 4 ? 32 : 128)}`;

export function createAggregatedOps(api: GcpApi, opts: { logger: Logger; maxRangesPerRule?: number }): GcpModeOps {
  const { logger } = opts;
  const limit = Math.min(opts.maxRangesPerRule ?? GCE_MAX_SOURCE_RANGES, GCE_MAX_SOURCE_RANGES);
  /** undefined until listed, and again after a failed write (the next operation re-reads). */
  let rules: Map<string, RuleState> | undefined;
  /** Operations share `rules`: one at a time, so two writes never build on the same stale list. */
  let tail: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => undefined);
    return run;
  };

  function stateOf(fw: Firewall): RuleState | undefined {
    const meta = decodeDoorMeta(fw.description ?? undefined);
    if (!NAME.test(fw.name) || !meta) return undefined;
    return { name: fw.name, door: meta.door, ranges: new Set(fw.sourceRanges ?? []), expiresAt: meta.expiresAt };
  }

  async function load(): Promise<Map<string, RuleState>> {
    const next = new Map<string, RuleState>();
    for (const fw of await api.list(`${RULE_PREFIX}.*`)) {
      const s = stateOf(fw);
      if (s) next.set(s.name, s);
    }
    rules = next;
    return next;
  }

  const entries = (s: RuleState): CloudRule[] =>
    [...s.ranges].map((range) => {
      const ip = range.slice(0, range.indexOf('/'));
      return { key: `${s.name}/${range}`, grantId: grantId(s.door, ip), ip, expiresAt: s.expiresAt };
    });

  /** Writes the rule's whole list: PATCH when it exists, INSERT when new, DELETE when emptied. */
  async function write(state: Map<string, RuleState>, next: RuleState, ports: readonly PortSpec[] | undefined): Promise<void> {
    const spec = { name: next.name, description: encodeDoorMeta(next.door, next.expiresAt), ports: ports ?? [], sourceRanges: [...next.ranges].sort() };
    if (next.ranges.size === 0) {
      await api.remove(next.name);
      state.delete(next.name);
      return;
    }
    try {
      if (state.has(next.name)) await api.patch(spec);
      else await api.insert(spec);
    } catch (err) {
      const code = providerCode(err);
      if (code === 'notFound' && ports) {
        // Deleted by hand since we listed: put it back whole.
        await api.insert(spec);
      } else if (code === 'alreadyExists') {
        // Someone (a previous leader) made it since we listed: keep its ranges too — the
        // periodic repair removes any that no grant wants — and write the union.
        const theirs = stateOf(await api.getExisting(next.name));
        for (const r of theirs?.ranges ?? []) next.ranges.add(r);
        next.expiresAt = laterExpiry(next.expiresAt, theirs?.expiresAt ?? next.expiresAt);
        await api.patch({ ...spec, description: encodeDoorMeta(next.door, next.expiresAt), sourceRanges: [...next.ranges].sort() });
      } else {
        throw err;
      }
    }
    state.set(next.name, next);
  }

  /** Writes every changed rule (a few at a time); on any failure the next operation re-lists. */
  async function writeAll(state: Map<string, RuleState>, changed: Map<string, { next: RuleState; ports?: readonly PortSpec[] }>): Promise<void> {
    try {
      await each([...changed.values()], (c) => write(state, c.next, c.ports));
    } catch (err) {
      rules = undefined;
      throw err;
    }
  }

  const copy = (s: RuleState): RuleState => ({ ...s, ranges: new Set(s.ranges) });

  async function grant(hgs: readonly HostGrant[]): Promise<CloudRule[]> {
    const state = rules ?? (await load());
    const changed = new Map<string, { next: RuleState; ports: readonly PortSpec[] }>();
    const placed: CloudRule[] = [];
    for (const hg of hgs) {
      const { door, ports } = hg.grant;
      const family = hg.family;
      const current = (name: string): RuleState | undefined => changed.get(name)?.next ?? state.get(name);
      const slots = Array.from({ length: MAX_SLOTS }, (_, slot) => aggregatedRuleName(door, ports, family, slot));
      let name = slots.find((n) => current(n)?.ranges.has(hg.cidr));
      if (!name) {
        // First rule of the group with room; a new slot only when every existing one is full.
        name = slots.find((n) => { const s = current(n); return s !== undefined && s.ranges.size < limit; }) ?? slots.find((n) => current(n) === undefined);
        if (!name) {
          throw kgwError('KGW_CLOUD_QUOTA', `door ${door} already holds ${MAX_SLOTS} × ${limit} IPv${family} addresses in GCP: refusing ${hg.grant.ip}`, { door, family, ip: hg.grant.ip });
        }
        const base = current(name);
        const next = base ? (changed.get(name)?.next ?? copy(base)) : { name, door, ranges: new Set<string>(), expiresAt: hg.grant.expiresAt };
        next.ranges.add(hg.cidr);
        next.expiresAt = laterExpiry(next.expiresAt, hg.grant.expiresAt);
        changed.set(name, { next, ports });
      }
      placed.push({ key: `${name}/${hg.cidr}`, grantId: hg.grant.id, ip: hg.grant.ip, expiresAt: hg.grant.expiresAt });
    }
    await writeAll(state, changed);
    if (changed.size > 0) logger.debug({ event: 'cloud.rules', provider: 'gcp', rules: [...changed.keys()] }, `updated ${changed.size} aggregated GCP rule(s)`);
    return placed;
  }

  async function revoke(grants: readonly Grant[], known: readonly CloudRule[] | undefined): Promise<void> {
    const state = rules ?? (await load());
    const removals = new Map<string, Set<string>>();
    const drop = (name: string, range: string): void => void removals.set(name, (removals.get(name) ?? new Set()).add(range));
    if (known) {
      // The caller's entries name their rule: `<rule>/<range>`.
      for (const r of known) {
        const cut = r.key.indexOf('/');
        if (cut > 0 && NAME.test(r.key.slice(0, cut))) drop(r.key.slice(0, cut), r.key.slice(cut + 1));
      }
    } else {
      for (const g of grants) {
        const range = hostRange(g.ip, g.family, g.prefix);
        for (const s of state.values()) if (s.door === g.door && s.ranges.has(range)) drop(s.name, range);
      }
    }
    const changed = new Map<string, { next: RuleState }>();
    for (const [name, ranges] of removals) {
      const base = state.get(name);
      if (!base) continue; // already gone
      const next = copy(base);
      for (const r of ranges) next.ranges.delete(r);
      if (next.ranges.size !== base.ranges.size) changed.set(name, { next });
    }
    await writeAll(state, changed);
  }

  return {
    grant: (hgs) => serial(() => grant(hgs)),
    revoke: (grants, known) => serial(() => revoke(grants, known)),
    list: () => serial(async () => [...(await load()).values()].flatMap(entries)),
  };
}
