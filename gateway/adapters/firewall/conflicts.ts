// Rules knockgw does not own that would drop or reject the protected ports anyway. An accept in
// knockgw's nft table is not final: a drop for the same port in another table, another hook or in
// iptables still wins. Used by `doctor` and at start-up (a warning with the fix).
import { isKnockgwError } from '../../core/errors.ts';
import type { PortSpec } from '../../core/grant.ts';
import { run, type Runner } from '../exec/index.ts';
import type { Conflict } from './conflict-rules.ts';
import { iptablesConflicts } from './conflicts-iptables.ts';
import { nftConflicts } from './conflicts-nft.ts';

export interface ConflictOptions {
  readonly netns?: string;
  readonly runner?: Runner;
}

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
