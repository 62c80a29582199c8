// Foreign iptables/ip6tables rules (from iptables-save) that drop a protected port before, or
// instead of, knockgw's KNOCKGW chain.
import { formatPort, type PortSpec, type Proto } from '../../core/grant.ts';
import { IPT_CHAIN } from './iptables.ts';
import { droppedPorts, type Conflict, type RuleShape } from './conflict-rules.ts';

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

