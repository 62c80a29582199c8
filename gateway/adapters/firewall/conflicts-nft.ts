// Foreign nftables rules (from `nft -j list ruleset`) that drop a protected port in another table
// or hook: an accept in knockgw's table is not final in nftables.
import { z } from 'zod';
import { formatPort, type PortSpec, type Proto } from '../../core/grant.ts';
import { NFT_FAMILY, NFT_TABLE } from '../../core/nft-ruleset.ts';
import { droppedPorts, type Conflict, type RuleShape } from './conflict-rules.ts';

const ChainJ = z.object({ family: z.string(), table: z.string(), name: z.string(), hook: z.string().optional(), policy: z.string().optional() });
const RuleJ = z.object({ family: z.string(), table: z.string(), chain: z.string(), handle: z.number(), expr: z.array(z.record(z.string(), z.unknown())) });
const MatchJ = z.object({ op: z.string(), left: z.record(z.string(), z.unknown()), right: z.unknown() });
const PayloadJ = z.object({ protocol: z.string(), field: z.string() });
const MetaJ = z.object({ key: z.string() });
const RangeJ = z.object({ range: z.tuple([z.number(), z.number()]) });
const SetJ = z.object({ set: z.array(z.unknown()) });
const Listing = z.object({ nftables: z.array(z.record(z.string(), z.unknown())) });

function nftPorts(right: unknown): ((n: number) => boolean) | undefined {
  if (typeof right === 'number') return (n) => n === right;
  const range = RangeJ.safeParse(right);
  if (range.success) return (n) => n >= range.data.range[0] && n <= range.data.range[1];
  const set = SetJ.safeParse(right);
  if (set.success) {
    const parts = set.data.set.map(nftPorts);
    if (parts.some((p) => p === undefined)) return undefined;
    return (n) => parts.some((p) => p?.(n));
  }
  return undefined;
}

function nftProtos(right: unknown): Set<Proto> | undefined {
  const names = SetJ.safeParse(right).success ? SetJ.parse(right).set : [right];
  const protos = new Set<Proto>();
  for (const n of names) if (n === 'tcp' || n === 'udp') protos.add(n);
  return protos.size ? protos : undefined;
}

function nftShape(expr: readonly Record<string, unknown>[]): RuleShape {
  let verdict: RuleShape['verdict'] = 'other';
  let protos: Set<Proto> | undefined;
  let port: ((n: number) => boolean) | undefined;
  let partial = false;
  let qualified = false;
  for (const e of expr) {
    if ('drop' in e || 'reject' in e) verdict = 'drop';
    else if ('accept' in e) verdict = 'accept';
    else if ('jump' in e || 'goto' in e || 'return' in e) verdict = 'other';
    else if ('xt' in e) qualified = true;
    const m = MatchJ.safeParse(e.match);
    if (!m.success) continue;
    const positive = m.data.op === '==' || m.data.op === 'in';
    const payload = PayloadJ.safeParse(m.data.left.payload);
    const meta = MetaJ.safeParse(m.data.left.meta);
    const ct = MetaJ.safeParse(m.data.left.ct);
    if (payload.success && payload.data.field === 'dport' && positive) {
      port = nftPorts(m.data.right);
      if (!port) qualified = true;
      if (payload.data.protocol === 'tcp' || payload.data.protocol === 'udp') protos = new Set([payload.data.protocol]);
    } else if (payload.success && payload.data.field === 'saddr') {
      partial = true;
    } else if (meta.success && meta.data.key === 'l4proto' && positive) {
      protos = nftProtos(m.data.right) ?? protos;
    } else if (ct.success && ct.data.key === 'state') {
      const text = JSON.stringify(m.data.right);
      if (text.includes('invalid') && !text.includes('new')) partial = true;
      else qualified = true;
    } else {
      qualified = true;
    }
  }
  return { verdict, ...(protos ? { protos } : {}), ...(port ? { port } : {}), partial, qualified };
}

/** `nft -a list ruleset` text: the rule text per handle, and the tables iptables-nft manages. */
function nftText(text: string): { rules: Map<string, string>; managed: Set<string> } {
  const rules = new Map<string, string>();
  const managed = new Set<string>();
  let table = '';
  let chain = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const w = /^# Warning: table (\S+ \S+) is managed by iptables-nft/.exec(line);
    if (w?.[1]) managed.add(w[1]);
    const t = /^table (\S+ \S+) \{/.exec(line);
    if (t?.[1]) table = t[1];
    const c = /^chain (\S+) \{/.exec(line);
    if (c?.[1]) chain = c[1];
    const r = /^(.*\S)\s+# handle (\d+)$/.exec(line);
    if (r?.[1] && !t && !c) rules.set(`${table} ${chain} ${r[2]}`, r[1]);
  }
  return { rules, managed };
}

/**
 * Conflicts in `nft -j list ruleset` (hooked input/prerouting chains of tables not ours).
 * `iptablesTables` ("ip filter", "ip6 filter") are the iptables-nft tables, read through
 * iptables-save instead so each rule is reported once, in the terms its owner uses.
 */
export function nftConflicts(json: string, text: string, ports: readonly PortSpec[], iptablesTables: ReadonlySet<string> = new Set()): Conflict[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return [];
  }
  const listing = Listing.safeParse(parsed);
  if (!listing.success) return [];
  const { rules: ruleText, managed } = nftText(text);
  const chains: z.infer<typeof ChainJ>[] = [];
  const rules: z.infer<typeof RuleJ>[] = [];
  for (const item of listing.data.nftables) {
    const c = ChainJ.safeParse(item.chain);
    if (c.success) chains.push(c.data);
    const r = RuleJ.safeParse(item.rule);
    if (r.success) rules.push(r.data);
  }
  const out: Conflict[] = [];
  for (const chain of chains) {
    const table = `${chain.family} ${chain.table}`;
    if (table === `${NFT_FAMILY} ${NFT_TABLE}`) continue;
    // iptables-nft tables are read through iptables-save, in iptables terms.
    if (managed.has(table) || iptablesTables.has(table)) continue;
    if (chain.hook !== 'input' && chain.hook !== 'prerouting') continue;
    const mine = rules.filter((r) => r.family === chain.family && r.table === chain.table && r.chain === chain.name);
    const where = `table ${table} chain ${chain.name}`;
    const left = droppedPorts(mine.map((r) => nftShape(r.expr)), chain.policy === 'drop', ports, (i, hit) => {
      const r = mine[i];
      if (!r) return;
      const rule = ruleText.get(`${table} ${chain.name} ${r.handle}`) ?? `handle ${r.handle}`;
      out.push({
        source: 'nftables',
        where,
        rule,
        ports: hit,
        explanation: `nftables ${where}: "${rule}" drops ${hit.map(formatPort).join(', ')} even for clients knockgw granted (an accept in knockgw's table is not final). knockgw already drops these ports for everyone without a grant, so delete it: nft delete rule ${table} ${chain.name} handle ${r.handle}`,
      });
    });
    if (left.length) {
      const first = left[0];
      out.push({
        source: 'nftables',
        where,
        rule: 'policy drop',
        ports: left,
        explanation: `nftables ${where} has policy drop and no accept for ${left.map(formatPort).join(', ')}, so granted clients are dropped there. Add one: nft insert rule ${table} ${chain.name} ${first?.proto ?? 'tcp'} dport ${first?.port ?? 22} accept (knockgw's table runs first and still drops these ports for everyone without a grant).`,
      });
    }
  }
  return out;
}

