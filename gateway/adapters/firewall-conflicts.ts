// Rules knockgw does not own that would drop or reject the protected ports anyway. An accept in
// knockgw's nft table is not final: a drop for the same port in another table, another hook or in
// iptables still wins. Used by `doctor` and at start-up (a warning with the fix).
import { z } from 'zod';
import { isKnockgwError } from '../core/errors.ts';
import { formatPort, type PortSpec, type Proto } from '../core/grant.ts';
import { NFT_FAMILY, NFT_TABLE } from '../core/nft-ruleset.ts';
import { run, type Runner } from './run.ts';
import { IPT_CHAIN } from './firewall-iptables.ts';

export interface Conflict {
  /** The tool that holds the rule: nftables, iptables, ip6tables, iptables-legacy, ip6tables-legacy. */
  readonly source: string;
  /** Where it is: "table inet filter chain input" or "iptables INPUT". */
  readonly where: string;
  /** The rule as the tool prints it, or "policy drop". */
  readonly rule: string;
  readonly ports: readonly PortSpec[];
  /** What happens and how to hand the ports to knockgw. */
  readonly explanation: string;
}

export interface ConflictOptions {
  readonly netns?: string;
  readonly runner?: Runner;
}

/** What one rule matches, as far as the protected ports are concerned. */
interface RuleShape {
  /** jump-knockgw: iptables' KNOCKGW chain decides first, so nothing after it matters. */
  readonly verdict: 'drop' | 'accept' | 'jump-knockgw' | 'other';
  readonly protos?: ReadonlySet<Proto>;
  readonly port?: (port: number) => boolean;
  /** Limited to some sources (or only invalid packets): not a drop of everyone's traffic. */
  readonly partial: boolean;
  /** Other conditions (interface, marks…): an accept with them settles nothing. */
  readonly qualified: boolean;
}

const covers = (r: RuleShape, p: PortSpec): boolean => (!r.protos || r.protos.has(p.proto)) && (!r.port || r.port(p.port));

/** Walks a chain in order: which protected ports does it drop for a granted client? */
function droppedPorts(rules: readonly RuleShape[], policyDrop: boolean, ports: readonly PortSpec[], onDrop: (index: number, hit: PortSpec[]) => void): PortSpec[] {
  let open = [...ports];
  rules.forEach((r, i) => {
    if (open.length === 0) return;
    if (r.verdict === 'jump-knockgw') {
      open = [];
      return;
    }
    const hit = open.filter((p) => covers(r, p));
    if (hit.length === 0) return;
    if (r.verdict === 'accept' && !r.partial && !r.qualified) open = open.filter((p) => !hit.includes(p));
    if (r.verdict === 'drop' && !r.partial) {
      onDrop(i, hit);
      open = open.filter((p) => !hit.includes(p));
    }
  });
  return policyDrop ? open : [];
}

// ---- iptables-save ------------------------------------------------------------------------

function tokens(line: string): string[] {
  return [...line.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2] ?? '');
}

function portPredicate(spec: string): (port: number) => boolean {
  const parts = spec.split(',').map((s) => s.split(':').map(Number));
  return (port) => parts.some(([a = -1, b]) => (b === undefined ? port === a : port >= a && port <= b));
}

function iptablesShape(line: string): RuleShape {
  const t = tokens(line);
  let verdict: RuleShape['verdict'] = 'other';
  let protos: Set<Proto> | undefined;
  let port: ((n: number) => boolean) | undefined;
  let partial = false;
  let qualified = false;
  for (let i = 2; i < t.length; i++) {
    const tok = t[i];
    const next = t[i + 1] ?? '';
    const negated = t[i - 1] === '!';
    if (tok === '-j' || tok === '-g') {
      verdict = next === 'DROP' || next === 'REJECT' ? 'drop' : next === 'ACCEPT' ? 'accept' : next === IPT_CHAIN ? 'jump-knockgw' : 'other';
      i++;
    } else if (tok === '-p') {
      if (!negated && (next === 'tcp' || next === 'udp')) protos = new Set([next]);
      else qualified = true;
      i++;
    } else if (tok === '--dport' || tok === '--dports' || tok === '--destination-port' || tok === '--destination-ports') {
      if (negated) qualified = true;
      else port = portPredicate(next);
      i++;
    } else if (tok === '-s' || tok === '--source' || tok === '--match-set' || tok === '--src-range') {
      partial = true;
      i++;
    } else if (tok === '--ctstate' || tok === '--state') {
      // A drop of INVALID packets (or of NEW only on an accept) is not about who may connect.
      if (/INVALID/.test(next) && !/NEW/.test(next)) partial = true;
      else qualified = true;
      i++;
    } else if (tok === '-m' || tok === '--comment' || tok === '!' || tok === '--reject-with' || tok === '--tcp-flags' || tok === '--syn') {
      if (tok !== '-m' && tok !== '!' && tok !== '--syn') i++;
      if (tok === '-m') i++;
    } else if (tok?.startsWith('-')) {
      qualified = true;
    }
  }
  return { verdict, ...(protos ? { protos } : {}), ...(port ? { port } : {}), partial, qualified };
}

/** Conflicts in one `iptables-save -t filter` dump (INPUT chain and its policy). */
export function iptablesConflicts(dump: string, ports: readonly PortSpec[], tool: string): Conflict[] {
  const lines = dump.split('\n').map((l) => l.trim());
  const input = lines.filter((l) => l.startsWith('-A INPUT '));
  const policyDrop = lines.some((l) => /^:INPUT DROP\b/.test(l));
  const out: Conflict[] = [];
  const left = droppedPorts(input.map(iptablesShape), policyDrop, ports, (i, hit) => {
    const rule = input[i] ?? '';
    out.push({
      source: tool,
      where: `${tool} INPUT`,
      rule,
      ports: hit,
      explanation: `${tool} rule "${rule}" drops ${hit.map(formatPort).join(', ')} even for clients knockgw granted (an accept in knockgw's rules is not final). knockgw already drops these ports for everyone without a grant, so remove it: ${tool} ${rule.replace(/^-A /, '-D ')}`,
    });
  });
  if (left.length) {
    out.push({
      source: tool,
      where: `${tool} INPUT`,
      rule: 'policy DROP',
      ports: left,
      explanation: `${tool} INPUT has policy DROP and no ACCEPT for ${left.map(formatPort).join(', ')}, so granted clients are dropped there. Add an accept before the policy (e.g. ${tool} -A INPUT -p ${left[0]?.proto ?? 'tcp'} --dport ${left[0]?.port ?? 22} -j ACCEPT): knockgw still drops these ports for everyone without a grant.`,
    });
  }
  return out;
}

// ---- nftables ------------------------------------------------------------------------------

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

// ---- the probe ----------------------------------------------------------------------------

export async function detectConflicts(ports: readonly PortSpec[], opts: ConflictOptions = {}): Promise<Conflict[]> {
  const exec = opts.runner ?? run;
  const ns = opts.netns ? { netns: opts.netns } : {};
  const optional = async (cmd: string, args: readonly string[], withStderr = false): Promise<string | undefined> => {
    try {
      const res = await exec(cmd, args, { ...ns, allowFail: true });
      if (res.code !== 0) return undefined;
      return withStderr ? `${res.stdout}\n${res.stderr}` : res.stdout;
    } catch (err) {
      if (isKnockgwError(err, 'KGW_TOOL_MISSING')) return undefined;
      throw err;
    }
  };
  const out: Conflict[] = [];
  const dumps: { tool: string; dump: string }[] = [];
  for (const tool of ['iptables', 'ip6tables', 'iptables-legacy', 'ip6tables-legacy']) {
    const dump = await optional(`${tool}-save`, ['-t', 'filter']);
    if (dump) dumps.push({ tool, dump });
  }
  // Tables iptables-nft shows are nft tables too: attribute them to iptables only.
  const iptablesTables = new Set<string>();
  for (const { tool, dump } of dumps) {
    if (!/\(nf_tables\)/.test(dump)) continue;
    for (const m of dump.matchAll(/^\*(\S+)/gm)) iptablesTables.add(`${tool === 'iptables' ? 'ip' : 'ip6'} ${m[1] ?? ''}`);
  }
  const json = await optional('nft', ['-j', 'list', 'ruleset']);
  // stderr too: newer nft prints "table ip filter is managed by iptables-nft" there.
  const text = await optional('nft', ['-a', 'list', 'ruleset'], true);
  if (json !== undefined && text !== undefined) out.push(...nftConflicts(json, text, ports, iptablesTables));
  for (const { tool, dump } of dumps) out.push(...iptablesConflicts(dump, ports, tool));
  return out;
}
