// HostFirewall on iptables/ip6tables: knockgw's own chain KNOCKGW, jumped from INPUT at position
// 1, with the grants in ipsets knockgw4/knockgw6 (kernel timeouts: expiry holds without the
// daemon). Without ipset, one commented rule per grant (then nothing expires without the daemon).
// Scoped grants (a carrier pool, an IPv6 /64) go to hash:net,port sets knockgw4net/knockgw6net.
import { describeError, kgwError, isKnockgwError } from '../../core/errors.ts';
import { parseIp, type Family } from '../../core/ip.ts';
import { entryKey } from '../../core/plan.ts';
import type { PortSpec, Proto } from '../../core/grant.ts';
import type { Clock, HostFirewall, Logger } from '../../ports.ts';
import type { FirewallEntry, FirewallOp } from '../../core/types.ts';
import { systemClock } from '../../ports.ts';
import { run, type Runner } from '../exec/index.ts';
import { ensureSpaIntake, removeSpaIntake } from './iptables-intake.ts';

export const IPT_CHAIN = 'KNOCKGW';
export const IPSETS: Readonly<Record<Family, string>> = { 4: 'knockgw4', 6: 'knockgw6' };
export const NET_IPSETS: Readonly<Record<Family, string>> = { 4: 'knockgw4net', 6: 'knockgw6net' };
/** Every set with its family and type: one-address grants, then scoped ones. */
const ALL_IPSETS: readonly (readonly [Family, string, string])[] = [[4, IPSETS[4], 'hash:ip,port'], [6, IPSETS[6], 'hash:ip,port'], [4, NET_IPSETS[4], 'hash:net,port'], [6, NET_IPSETS[6], 'hash:net,port']];
/** The kernel's upper bound for an ipset timeout; longer grants are refreshed by the reconciler. */
export const IPSET_MAX_TIMEOUT_S = 2147483;
const IPSET_MAXELEM = 262144;
const COMMENT_PREFIX = 'knockgw:';
/** multiport takes at most 15 ports per rule. */
const MULTIPORT_MAX = 15;

export interface IptablesOptions {
  readonly logger: Logger;
  readonly netns?: string;
  readonly runner?: Runner;
  readonly clock?: Clock;
  /** Force (true) or forbid (false) ipset; default: use it when the `ipset` tool works. */
  readonly useIpset?: boolean;
  /** The SPA intake (raw table, NFLOG) on this UDP port (adapters/firewall/iptables-intake.ts). */
  readonly spa?: { readonly port: number };
}

const TOOLS: Readonly<Record<Family, { ipt: string; restore: string; inet: string }>> = {
  4: { ipt: 'iptables', restore: 'iptables-restore', inet: 'inet' },
  6: { ipt: 'ip6tables', restore: 'ip6tables-restore', inet: 'inet6' },
};
const FAMILIES: readonly Family[] = [4, 6];

function portRules(ports: readonly PortSpec[], tail: string): string[] {
  const out: string[] = [];
  for (const proto of ['tcp', 'udp'] as const) {
    const nums = [...new Set(ports.filter((p) => p.proto === proto).map((p) => p.port))].sort((a, b) => a - b);
    for (let i = 0; i < nums.length; i += MULTIPORT_MAX) {
      out.push(`-A ${IPT_CHAIN} -p ${proto} -m multiport --dports ${nums.slice(i, i + MULTIPORT_MAX).join(',')} ${tail}`);
    }
  }
  return out;
}

/** `knockgw:<ip>:<port>/<proto>@<expires unix s | 0>`: the rule says what it grants and until when. */
function commentFor(e: FirewallEntry): string {
  const until = e.expiresAt === null ? 0 : Math.ceil(e.expiresAt / 1000);
  return `${COMMENT_PREFIX}${covered(e)}:${e.port}/${e.proto}@${until}`;
}

/** "ip" or "net/len", as the sets and comments write it. */
function covered(e: FirewallEntry): string {
  return e.prefix === undefined ? e.ip : `${e.ip}/${e.prefix}`;
}

/** The address part of a set element or comment: a host, or a network narrower than the host width. */
function parseCovered(text: string): Pick<FirewallEntry, 'ip' | 'family' | 'prefix'> | undefined {
  const [addr = '', len] = text.split('/');
  const ip = parseIp(addr);
  if (!ip) return undefined;
  const prefix = len === undefined ? undefined : Number(len);
  const wide = prefix !== undefined && prefix < (ip.family === 4 ? 32 : 128);
  return { ip: ip.address, family: ip.family, ...(wide ? { prefix } : {}) };
}

function grantRuleSpec(e: FirewallEntry): string {
  const host = `${e.ip}/${e.prefix ?? (e.family === 4 ? 32 : 128)}`;
  return `${IPT_CHAIN} -s ${host} -p ${e.proto} -m ${e.proto} --dport ${e.port} -m comment --comment "${commentFor(e)}" -j ACCEPT`;
}

function parseComment(comment: string): FirewallEntry | undefined {
  const m = /^knockgw:(.+):(\d+)\/(tcp|udp)@(\d+)$/.exec(comment);
  if (!m) return undefined;
  const ip = parseCovered(m[1] ?? '');
  const proto: Proto = m[3] === 'udp' ? 'udp' : 'tcp';
  const until = Number(m[4]);
  if (!ip) return undefined;
  return { ...ip, port: Number(m[2]), proto, expiresAt: until === 0 ? null : until * 1000 };
}

function parseIpsetSave(text: string, now: number): FirewallEntry[] {
  const out: FirewallEntry[] = [];
  for (const line of text.split('\n')) {
    const m = /^add \S+ (\S+),(tcp|udp):(\d+)(?: timeout (\d+))?/.exec(line.trim());
    if (!m) continue;
    const ip = parseCovered(m[1] ?? '');
    if (!ip) continue;
    const timeout = Number(m[4] ?? 0);
    out.push({ ...ip, port: Number(m[3]), proto: m[2] === 'udp' ? 'udp' : 'tcp', expiresAt: timeout === 0 ? null : now + timeout * 1000 });
  }
  return out;
}

export function createIptablesFirewall(opts: IptablesOptions): HostFirewall {
  const exec = opts.runner ?? run;
  const clock = opts.clock ?? systemClock;
  const log = opts.logger.child({ component: 'firewall-iptables' });
  const ns = opts.netns ? { netns: opts.netns } : {};
  let ipsetMode: boolean | undefined = opts.useIpset;

  async function useIpset(): Promise<boolean> {
    if (ipsetMode !== undefined) return ipsetMode;
    try {
      await exec('ipset', ['--version'], ns);
      ipsetMode = true;
    } catch (err) {
      if (!isKnockgwError(err, 'KGW_TOOL_MISSING')) throw err;
      ipsetMode = false;
      log.warn({ event: 'firewall.no_ipset' }, 'ipset is not installed: grants become commented iptables rules, which have no kernel expiry (a grant outlives its TTL while the daemon is down)');
    }
    return ipsetMode;
  }

  /** The chain's rules, or undefined when it does not exist. The whole table is listed because
   * iptables-nft answers `-S CHAIN` on a missing table with "incompatible" rather than "No chain". */
  async function chainRules(f: Family, chain: string): Promise<string[] | undefined> {
    const lines = (await exec(TOOLS[f].ipt, ['-w', '-S'], ns)).stdout.split('\n');
    const builtin = chain === 'INPUT' || chain === 'FORWARD' || chain === 'OUTPUT';
    if (!builtin && !lines.includes(`-N ${chain}`)) return undefined;
    return lines.filter((l) => l.startsWith(`-A ${chain} `));
  }

  async function commentedGrants(f: Family): Promise<FirewallEntry[]> {
    const out: FirewallEntry[] = [];
    for (const line of (await chainRules(f, IPT_CHAIN)) ?? []) {
      const m = /--comment "?(knockgw:[^"\s]+)"?/.exec(line);
      const e = m?.[1] ? parseComment(m[1]) : undefined;
      if (e) out.push(e);
    }
    return out;
  }

  /** Lines that leave exactly one `-j KNOCKGW` in INPUT, at position 1. */
  async function jumpLines(f: Family): Promise<string[]> {
    const input = (await chainRules(f, 'INPUT')) ?? [];
    const jumps = input.filter((l) => l === `-A INPUT -j ${IPT_CHAIN}`).length;
    if (jumps === 1 && input[0] === `-A INPUT -j ${IPT_CHAIN}`) return [];
    return [...Array.from({ length: jumps }, () => `-D INPUT -j ${IPT_CHAIN}`), `-I INPUT 1 -j ${IPT_CHAIN}`];
  }

  /** Replaces the KNOCKGW chain of one family in one restore (declaring a chain flushes it) and jumps to it first. */
  async function restoreChain(f: Family, protectedPorts: readonly PortSpec[], grants: readonly string[]): Promise<void> {
    const lines = [
      '*filter',
      `:${IPT_CHAIN} - [0:0]`,
      `-A ${IPT_CHAIN} -i lo -j RETURN`,
      // Established connections survive a revoke, like knockd.
      ...portRules(protectedPorts, '-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT'),
      ...grants,
      ...portRules(protectedPorts, '-j DROP'),
      `-A ${IPT_CHAIN} -j RETURN`,
      ...(await jumpLines(f)),
      'COMMIT',
    ];
    await exec(TOOLS[f].restore, ['-w', '--noflush'], { ...ns, input: `${lines.join('\n')}\n` });
  }

  /** The full base failed: the chain without any grant (no ipset needed) drops the protected ports; then fail. */
  async function lockdown(protectedPorts: readonly PortSpec[], cause: unknown): Promise<never> {
    const ports = protectedPorts.map((p) => `${p.port}/${p.proto}`).join(', ');
    try {
      for (const f of FAMILIES) await restoreChain(f, protectedPorts, []);
      log.error({ event: 'firewall.lockdown', ports, err: describeError(cause) }, `the base rules could not be installed; ${ports} are now dropped for everyone until they can`);
    } catch (again) {
      log.fatal({ event: 'firewall.lockdown_failed', ports, err: describeError(again) }, `neither the base rules nor the lockdown could be installed: ${ports} may be open`);
    }
    throw kgwError('KGW_FW_COMMAND', `cannot install the iptables base rules: ${describeError(cause)}`, {}, cause);
  }

  return {
    name: 'iptables',

    async ensureBase(protectedPorts: readonly PortSpec[]): Promise<void> {
      let withIpset = false;
      try {
        withIpset = await useIpset();
        if (withIpset) {
          const creates = ALL_IPSETS.map(([f, name, type]) => `create ${name} ${type} family ${TOOLS[f].inet} timeout 0 maxelem ${IPSET_MAXELEM}`);
          await exec('ipset', ['restore', '-exist'], { ...ns, input: `${creates.join('\n')}\n` });
        }
        for (const f of FAMILIES) {
          const kept = withIpset ? [] : (await commentedGrants(f)).filter((e) => e.family === f && (e.expiresAt === null || e.expiresAt > clock.now()));
          const grants = withIpset ? [IPSETS[f], NET_IPSETS[f]].map((set) => `-A ${IPT_CHAIN} -m set --match-set ${set} src,dst -j ACCEPT`) : kept.map((e) => `-A ${grantRuleSpec(e)}`);
          await restoreChain(f, protectedPorts, grants);
        }
      } catch (err) {
        await lockdown(protectedPorts, err);
      }
      if (opts.spa) await ensureSpaIntake(exec, opts.spa.port, ns);
      log.info({ event: 'firewall.base', chain: IPT_CHAIN, ipset: withIpset, ports: protectedPorts.map((p) => `${p.port}/${p.proto}`), ...(opts.spa ? { spaPort: opts.spa.port } : {}) }, 'iptables base ready');
    },

    async apply(ops: readonly FirewallOp[]): Promise<void> {
      if (ops.length === 0) return;
      const now = clock.now();
      if (await useIpset()) {
        const lines: string[] = [];
        for (const { op, entry } of ops) {
          const elem = `${(entry.prefix === undefined ? IPSETS : NET_IPSETS)[entry.family]} ${covered(entry)},${entry.proto}:${entry.port}`;
          if (op === 'remove') lines.push(`del ${elem}`);
          else if (entry.expiresAt === null) lines.push(`add ${elem} timeout 0`);
          else if (entry.expiresAt > now) lines.push(`add ${elem} timeout ${Math.min(IPSET_MAX_TIMEOUT_S, Math.ceil((entry.expiresAt - now) / 1000))}`);
        }
        // -exist: re-adding refreshes the timeout, deleting an absent entry is not an error.
        if (lines.length) await exec('ipset', ['restore', '-exist'], { ...ns, input: `${lines.join('\n')}\n` });
        return;
      }
      for (const f of FAMILIES) {
        const mine = ops.filter((o) => o.entry.family === f);
        if (mine.length === 0) continue;
        const present = new Map((await commentedGrants(f)).map((e) => [entryKey(e), e]));
        const lines: string[] = [];
        for (const { op, entry } of mine) {
          const key = entryKey(entry);
          const old = present.get(key);
          if (old) {
            lines.push(`-D ${grantRuleSpec(old)}`);
            present.delete(key);
          }
          if (op === 'add' && (entry.expiresAt === null || entry.expiresAt > now)) {
            lines.push(`-I ${grantRuleSpec(entry).replace(IPT_CHAIN, `${IPT_CHAIN} 1`)}`);
            present.set(key, entry);
          }
        }
        if (lines.length) await exec(TOOLS[f].restore, ['-w', '--noflush'], { ...ns, input: `*filter\n${lines.join('\n')}\nCOMMIT\n` });
      }
    },

    async list(): Promise<FirewallEntry[]> {
      const out: FirewallEntry[] = [];
      const withIpset = await useIpset();
      if (!withIpset) {
        for (const f of FAMILIES) out.push(...(await commentedGrants(f)));
        return out;
      }
      for (const [, set] of ALL_IPSETS) {
        const res = await exec('ipset', ['save', set], { ...ns, allowFail: true });
        if (res.code !== 0) {
          if (/does not exist/.test(res.stderr)) continue;
          throw kgwError('KGW_FW_COMMAND', `ipset save ${set} failed: ${res.stderr}`, { stderr: res.stderr });
        }
        out.push(...parseIpsetSave(res.stdout, clock.now()));
      }
      return out;
    },

    async teardown(): Promise<void> {
      await removeSpaIntake(exec, ns);
      for (const f of FAMILIES) {
        const input = (await chainRules(f, 'INPUT')) ?? [];
        const exists = (await chainRules(f, IPT_CHAIN)) !== undefined;
        const lines = input.filter((l) => l === `-A INPUT -j ${IPT_CHAIN}`).map(() => `-D INPUT -j ${IPT_CHAIN}`);
        if (exists) lines.push(`-F ${IPT_CHAIN}`, `-X ${IPT_CHAIN}`);
        if (lines.length) await exec(TOOLS[f].restore, ['-w', '--noflush'], { ...ns, input: `*filter\n${lines.join('\n')}\nCOMMIT\n` });
      }
      // Sets last: the kernel refuses to destroy a set a rule still references.
      if (await useIpset()) {
        for (const [, set] of ALL_IPSETS) {
          const res = await exec('ipset', ['destroy', set], { ...ns, allowFail: true });
          if (res.code !== 0 && !/does not exist/.test(res.stderr)) {
            throw kgwError('KGW_FW_COMMAND', `ipset destroy ${set} failed: ${res.stderr}`, { stderr: res.stderr });
          }
        }
      }
      log.info({ event: 'firewall.teardown', chain: IPT_CHAIN }, 'iptables chain and sets removed');
    },
  };
}
