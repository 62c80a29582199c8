// What the conflict finders share: the shape of one foreign rule as far as the protected ports
// are concerned, and the walk down a chain that finds which of them it drops.
import type { PortSpec, Proto } from '../../core/grant.ts';

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

/** What one rule matches, as far as the protected ports are concerned. */
export interface RuleShape {
  /** jump-knockgw: iptables' KNOCKGW chain decides first, so nothing after it matters. */
  readonly verdict: 'drop' | 'accept' | 'jump-knockgw' | 'other';
  readonly protos?: ReadonlySet<Proto>;
  readonly port?: (port: number) => boolean;
  /** Limited to some sources (or only invalid packets): not a drop of everyone's traffic. */
  readonly partial: boolean;
  /** Other conditions (interface, marks…): an accept with them settles nothing. */
  readonly qualified: boolean;
}

export const covers = (r: RuleShape, p: PortSpec): boolean => (!r.protos || r.protos.has(p.proto)) && (!r.port || r.port(p.port));

/** Walks a chain in order: which protected ports does it drop for a granted client? */
export function droppedPorts(rules: readonly RuleShape[], policyDrop: boolean, ports: readonly PortSpec[], onDrop: (index: number, hit: PortSpec[]) => void): PortSpec[] {
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

