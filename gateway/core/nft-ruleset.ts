// The text of knockgw's own nftables table `inet knockgw`, and of element batches. Pure: the
// adapter feeds these to `nft -f -`, one transaction each.
import type { FirewallEntry, FirewallOp } from './types.ts';
import type { PortSpec, Proto } from './grant.ts';
import { ALLOWED_SETS, type KernelProgram } from './nft-kernel.ts';
import { MAX_TIMEOUT_S } from './timers.ts';

export const NFT_FAMILY = 'inet';
export const NFT_TABLE = 'knockgw';
export const INPUT_CHAIN = 'input';
/** allowed4/6 hold one element per granted (ip, proto, port): room for 100k grants and then some. */
export const ALLOWED_SET_SIZE = 262144;
/**
 * Scoped grants (a carrier pool, an IPv6 /64) live in interval sets of their own. The exact-address
 * sets stay as they are: the kernel engine's `update @allowed4` cannot target an interval set, and
 * one-address grants (the common case) keep the hash set's lookup.
 */
export const NET_SETS = Object.freeze({ 4: 'allowed4net', 6: 'allowed6net' } as const);
export const NET_SET_SIZE = 65536;
/** Before a typical `filter` table (priority 0), so our drop of unknown sources comes first. */
export const INPUT_PRIORITY = 'filter - 10';
/** Elements per `add element` statement: keeps each netlink message well under its limits. */
const ELEMENTS_PER_STATEMENT = 1000;

const Q = `${NFT_FAMILY} ${NFT_TABLE}`;

/** Chains and sets already in the table (from `nft -j -t list table`), so stale ones can go. */
export interface ExistingObjects { readonly chains: readonly string[]; readonly sets: readonly string[] }

function portList(ports: readonly PortSpec[], proto: Proto): string | undefined {
  const nums = [...new Set(ports.filter((p) => p.proto === proto).map((p) => p.port))].sort((a, b) => a - b);
  return nums.length ? `{ ${nums.join(', ')} }` : undefined;
}

function allowedSetDecl(name: string, addrType: string): string {
  // `dynamic` always: the kernel engine's rules update these sets, the kernel then marks them
  // dynamic, and re-declaring a set with other flags fails ("File exists").
  return `  set ${name} { type ${addrType} . inet_proto . inet_service; flags dynamic,timeout; size ${ALLOWED_SET_SIZE}; }`;
}

function netSetDecl(name: string, addrType: string): string {
  return `  set ${name} { type ${addrType} . inet_proto . inet_service; flags interval,timeout; size ${NET_SET_SIZE}; }`;
}

function inputRules(protectedPorts: readonly PortSpec[]): string[] {
  const lists = (['tcp', 'udp'] as const).flatMap((proto) => {
    const list = portList(protectedPorts, proto);
    return list ? [{ proto, list }] : [];
  });
  return [
    // Local processes are not knocking clients.
    'iif "lo" accept',
    // Established connections survive a revoke, like knockd.
    ...lists.map(({ proto, list }) => `${proto} dport ${list} ct state established,related accept`),
    `ip saddr . meta l4proto . th dport @${ALLOWED_SETS[4]} accept`,
    `ip6 saddr . meta l4proto . th dport @${ALLOWED_SETS[6]} accept`,
    `ip saddr . meta l4proto . th dport @${NET_SETS[4]} accept`,
    `ip6 saddr . meta l4proto . th dport @${NET_SETS[6]} accept`,
    ...lists.map(({ proto, list }) => `${proto} dport ${list} counter drop`),
  ];
}

/**
 * One transaction that (re)creates the table whatever its state: allowed4/6 are declared (a
 * no-op when they exist, so grants survive a daemon restart; created after a reboot), every other
 * chain and set is flushed/deleted and rebuilt from the current config.
 */
export function renderBase(protectedPorts: readonly PortSpec[], existing: ExistingObjects, kernel?: KernelProgram, intake?: Pick<KernelProgram, 'sets' | 'chains'>): string {
  const lines: string[] = [
    `table ${Q} {`,
    allowedSetDecl(ALLOWED_SETS[4], 'ipv4_addr'),
    allowedSetDecl(ALLOWED_SETS[6], 'ipv6_addr'),
    netSetDecl(NET_SETS[4], 'ipv4_addr'),
    netSetDecl(NET_SETS[6], 'ipv6_addr'),
    `  chain ${INPUT_CHAIN} { type filter hook input priority ${INPUT_PRIORITY}; policy accept; }`,
    '}',
    `flush chain ${Q} ${INPUT_CHAIN}`,
  ];
  const others = existing.chains.filter((c) => c !== INPUT_CHAIN);
  // Flush all before deleting any: a chain cannot go while another still jumps to it.
  for (const c of others) lines.push(`flush chain ${Q} ${c}`);
  for (const c of others) lines.push(`delete chain ${Q} ${c}`);
  const allowed = new Set<string>([...Object.values(ALLOWED_SETS), ...Object.values(NET_SETS)]);
  for (const s of existing.sets) if (!allowed.has(s)) lines.push(`delete set ${Q} ${s}`);

  lines.push(`table ${Q} {`);
  // The packet intakes (core/nft-intake.ts) next to the kernel engine: names never overlap.
  for (const s of [...(kernel?.sets ?? []), ...(intake?.sets ?? [])]) lines.push(`  set ${s.name} { ${s.body} }`);
  for (const c of [...(kernel?.chains ?? []), ...(intake?.chains ?? [])]) {
    lines.push(`  chain ${c.name} {`);
    if (c.hook) lines.push(`    ${c.hook}`);
    for (const r of c.rules) lines.push(`    ${r}`);
    lines.push('  }');
  }
  lines.push(`  chain ${INPUT_CHAIN} {`);
  for (const r of inputRules(protectedPorts)) lines.push(`    ${r}`);
  lines.push('  }', '}');
  return `${lines.join('\n')}\n`;
}

/**
 * When the base cannot be installed: knockgw's table replaced by one that only drops the
 * protected ports (loopback and established connections excepted). Grants in the kernel go with
 * the old table — the store keeps them, and the next successful start puts them back. Fail closed.
 */
export function renderLockdown(protectedPorts: readonly PortSpec[]): string {
  const lists = (['tcp', 'udp'] as const).flatMap((proto) => {
    const list = portList(protectedPorts, proto);
    return list ? [{ proto, list }] : [];
  });
  return [
    `table ${Q}`,
    `delete table ${Q}`,
    `table ${Q} {`,
    `  chain ${INPUT_CHAIN} {`,
    `    type filter hook input priority ${INPUT_PRIORITY}; policy accept;`,
    '    iif "lo" accept',
    ...lists.map(({ proto, list }) => `    ${proto} dport ${list} ct state established,related accept`),
    ...lists.map(({ proto, list }) => `    ${proto} dport ${list} counter drop`),
    '  }',
    '}',
    '',
  ].join('\n');
}

/** An element timeout the kernel accepts: longer grants are held to the limit and refreshed by the repair. */
export function nftTimeout(ms: number): string {
  return `${Math.min(MAX_TIMEOUT_S * 1000, Math.max(1, Math.ceil(ms)))}ms`;
}

function elementKey(e: FirewallEntry): string {
  return `${e.prefix === undefined ? e.ip : `${e.ip}/${e.prefix}`} . ${e.proto} . ${e.port}`;
}

function statements(verb: 'add' | 'delete', set: string, elements: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < elements.length; i += ELEMENTS_PER_STATEMENT) {
    out.push(`${verb} element ${Q} ${set} { ${elements.slice(i, i + ELEMENTS_PER_STATEMENT).join(', ')} }`);
  }
  return out;
}

/**
 * One transaction for a whole batch. nft 1.0.6 has no `destroy element`, and deleting an absent
 * element fails the batch, while adding a present one does not refresh its timeout on every
 * kernel. So every touched key is first added (a no-op if present), then deleted (now always
 * present), then the wanted ones added with their exact remaining time. Expired adds are dropped.
 * An add the planner marked fresh (no such element seen) is a plain add: the common knock → open
 * case costs one netlink operation instead of three; if the element was there after all, its
 * timeout is refreshed by the next full repair.
 */
export function renderOps(ops: readonly FirewallOp[], now: number): string {
  const lines: string[] = [];
  for (const [family, set, scoped] of [[4, ALLOWED_SETS[4], false], [6, ALLOWED_SETS[6], false], [4, NET_SETS[4], true], [6, NET_SETS[6], true]] as const) {
    const touched = new Map<string, FirewallEntry>();
    const adds = new Map<string, string>();
    const freshKeys = new Set<string>();
    for (const op of ops) {
      const { entry } = op;
      if (entry.family !== family || (entry.prefix !== undefined) !== scoped) continue;
      const key = elementKey(entry);
      if (op.op === 'add' && op.fresh === true && !touched.has(key)) freshKeys.add(key);
      else {
        freshKeys.delete(key);
        touched.set(key, entry);
      }
      if (op.op === 'remove') {
        adds.delete(key);
        continue;
      }
      if (entry.expiresAt === null) adds.set(key, key);
      else if (entry.expiresAt > now) adds.set(key, `${key} timeout ${nftTimeout(entry.expiresAt - now)}`);
      else adds.delete(key);
    }
    const keys = [...touched.keys()];
    lines.push(...statements('add', set, keys), ...statements('delete', set, keys), ...statements('add', set, [...adds.values()]));
  }
  return lines.length ? `${lines.join('\n')}\n` : '';
}
