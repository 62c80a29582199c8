// The SPA intake on the iptables backend: the kernel filter of core/nft-intake.ts in the raw
// table (PREROUTING, before conntrack), as iptables-restore text. Every UDP packet to the SPA
// port of this host is dropped unless its source is no martian, its size and first four bytes
// can be fwknop's, its source (IPv6: its /64) is within SPA_RATE (hashlimit) and all sources
// together within SPA_CAP (limit); what passes goes untracked (CT --notrack) to the daemon's
// UDP socket when one is bound (-m socket), as on nftables.
// The pcap engine's knocks are not moved here: iptables has no sets the kernel can hold first
// knocks in without ipset, so on this backend they are still read from the interface by tcpdump
// (doctor and the start-up log say so).
import type { Family } from '../../core/ip.ts';
import { SPA_CAP, SPA_RATE } from '../../core/nft-intake.ts';
import type { RunOptions, RunResult } from '../exec/index.ts';

export const IPT_SPA_CHAIN = 'KNOCKGW_SPA';
/** Where what passed every check goes: untracked, then accepted (limit cannot be negated, so it jumps here). */
const IPT_SPA_PASS = 'KNOCKGW_SPA_PASS';

type Exec = (cmd: string, args: readonly string[], opts?: RunOptions) => Promise<RunResult>;

const TOOL: Readonly<Record<Family, { ipt: string; restore: string }>> = {
  4: { ipt: 'iptables', restore: 'iptables-restore' },
  6: { ipt: 'ip6tables', restore: 'ip6tables-restore' },
};

/** Base64's alphabet as u32 ranges: + / 0-9 A-Z a-z. */
const B64 = '43,47:57,65:90,97:122';
/** The first four payload bytes: IPv4 finds the UDP header from the IHL; IPv6 assumes no extension headers (fwknop sends none). */
const FIRST_BYTES: Readonly<Record<Family, string>> = {
  4: ['>>24', '>>16&0xFF', '>>8&0xFF', '&0xFF'].map((s) => `0>>22&0x3C@8${s}=${B64}`).join('&&'),
  6: ['>>24', '>>16&0xFF', '>>8&0xFF', '&0xFF'].map((s) => `48${s}=${B64}`).join('&&'),
};
/** IP packet lengths of a 140-1500 byte UDP payload (IPv4 header 20-60 bytes; IPv6 40 plus room). */
const LENGTH: Readonly<Record<Family, string>> = { 4: '168:1568', 6: '188:1612' };
const BOGONS: Readonly<Record<Family, readonly string[]>> = {
  4: ['-m addrtype --src-type LOCAL,BROADCAST,MULTICAST', '-s 0.0.0.0/8', '-s 240.0.0.0/4'],
  6: ['-m addrtype --src-type LOCAL,MULTICAST', '-s ::/128', '-s ::ffff:0:0/96'],
};

function jumpSpec(port: number): string {
  return `-p udp -m udp --dport ${port} -m addrtype --dst-type LOCAL -j ${IPT_SPA_CHAIN}`;
}

/** The raw table's PREROUTING rules that jump to our chain (whatever port an older config used). */
async function jumps(exec: Exec, f: Family, ns: RunOptions): Promise<string[]> {
  const out = (await exec(TOOL[f].ipt, ['-w', '-t', 'raw', '-S', 'PREROUTING'], ns)).stdout;
  return out.split('\n').filter((l) => l.startsWith('-A PREROUTING ') && l.endsWith(` -j ${IPT_SPA_CHAIN}`));
}

async function chainExists(exec: Exec, f: Family, ns: RunOptions, chain: string): Promise<boolean> {
  const out = (await exec(TOOL[f].ipt, ['-w', '-t', 'raw', '-S'], ns)).stdout;
  return out.split('\n').includes(`-N ${chain}`);
}

/** Creates or replaces the SPA intake for `port`, both families, each in one restore. */
export async function ensureSpaIntake(exec: Exec, port: number, ns: RunOptions): Promise<void> {
  for (const f of [4, 6] as const) {
    const c = IPT_SPA_CHAIN;
    const lines = [
      '*raw',
      // Declaring the chain in a restore flushes it: the chain is replaced atomically.
      `:${c} - [0:0]`,
      `:${IPT_SPA_PASS} - [0:0]`,
      ...BOGONS[f].map((m) => `-A ${c} ${m} -j DROP`),
      `-A ${c} -m length ! --length ${LENGTH[f]} -j DROP`,
      `-A ${c} -m u32 ! --u32 "${FIRST_BYTES[f]}" -j DROP`,
      `-A ${c} -m hashlimit --hashlimit-above ${SPA_RATE.perSecond}/sec --hashlimit-burst ${SPA_RATE.burst} --hashlimit-mode srcip --hashlimit-srcmask ${f === 4 ? 32 : 64} --hashlimit-name knockgw_spa${f} --hashlimit-htable-expire 2000 -j DROP`,
      `-A ${c} -m limit --limit ${SPA_CAP.perSecond}/sec --limit-burst ${SPA_CAP.burst} -j ${IPT_SPA_PASS}`,
      `-A ${c} -j DROP`,
      `-A ${IPT_SPA_PASS} -j CT --notrack`,
      // Only to a bound socket (--nowildcard: ours is bound to any address): silent while the daemon is down.
      `-A ${IPT_SPA_PASS} -m socket --nowildcard -j ACCEPT`,
      `-A ${IPT_SPA_PASS} -j DROP`,
      ...(await jumps(exec, f, ns)).map((l) => l.replace(/^-A /, '-D ')),
      `-I PREROUTING 1 ${jumpSpec(port)}`,
      'COMMIT',
    ];
    await exec(TOOL[f].restore, ['-w', '--noflush'], { ...ns, input: `${lines.join('\n')}\n` });
  }
}

/** Removes the SPA intake (jumps first: a chain still jumped to cannot go). */
export async function removeSpaIntake(exec: Exec, ns: RunOptions): Promise<void> {
  for (const f of [4, 6] as const) {
    const lines = (await jumps(exec, f, ns)).map((l) => l.replace(/^-A /, '-D '));
    if (await chainExists(exec, f, ns, IPT_SPA_CHAIN)) lines.push(`-F ${IPT_SPA_CHAIN}`, `-X ${IPT_SPA_CHAIN}`);
    if (await chainExists(exec, f, ns, IPT_SPA_PASS)) lines.push(`-F ${IPT_SPA_PASS}`, `-X ${IPT_SPA_PASS}`);
    if (lines.length > 0) await exec(TOOL[f].restore, ['-w', '--noflush'], { ...ns, input: `*raw\n${lines.join('\n')}\nCOMMIT\n` });
  }
}
