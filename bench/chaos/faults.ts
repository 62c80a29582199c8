// The faults, each applied inside the lab's namespaces only (nft tables and qdiscs of a gateway
// node's namespace, processes the lab started) and healed by undoing exactly that.
import { sh } from '../../test/helpers/netns.ts';
import type { GatewayNode } from './nodes.ts';
import { killNode, restartNode } from './nodes.ts';
import { STORE_NET } from './lab.ts';
import type { RedisSide } from './redis.ts';
import { REDIS_NODES } from './redis.ts';

export const FAULT_KINDS = ['partition-oneway', 'partition-twoway', 'loss', 'delay', 'primary-kill', 'node-kill', 'redis-restart'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface FaultContext {
  readonly nodes: readonly GatewayNode[];
  readonly redis: RedisSide;
  readonly dir: string;
  readonly config: string;
}

export interface Fault {
  readonly kind: FaultKind;
  /** What it hit, for the log. */
  readonly target: string;
  heal(): Promise<void>;
}

const TABLE = 'kgwchaos';

/** nft rules in a node's namespace on the packets to (and from) the store side only. */
async function storeRules(node: GatewayNode, out: string, inbound: string | undefined): Promise<() => Promise<void>> {
  const rules = [
    `add table inet ${TABLE}`,
    `add chain inet ${TABLE} out { type filter hook output priority -300; }`,
    `add rule inet ${TABLE} out ip daddr ${STORE_NET} ${out}`,
    ...(inbound ? [`add chain inet ${TABLE} in { type filter hook input priority -300; }`, `add rule inet ${TABLE} in ip saddr ${STORE_NET} ${inbound}`] : []),
  ];
  await sh('ip', ['netns', 'exec', node.member.ns, 'nft', '-f', '-'], { input: rules.join('\n') });
  return async () => void (await node.member.exec('nft', ['delete', 'table', 'inet', TABLE], { allowFail: true }));
}

/**
 * A slow link to the store: an htb class at SLOW_RATE that a u32 filter feeds with the store's
 * traffic only, so probes and knocks stay exact. Queueing delay (a round trip of a few hundred
 * ms, more for a full read), not netem's fixed delay: the kernel this runs on has no sch_netem.
 */
async function slowLink(node: GatewayNode): Promise<() => Promise<void>> {
  const tc = (args: readonly string[]) => node.member.exec('tc', args);
  await tc(['qdisc', 'add', 'dev', 'eth0', 'root', 'handle', '1:', 'htb', 'default', '10']);
  await tc(['class', 'add', 'dev', 'eth0', 'parent', '1:', 'classid', '1:10', 'htb', 'rate', '1gbit']);
  await tc(['class', 'add', 'dev', 'eth0', 'parent', '1:', 'classid', '1:20', 'htb', 'rate', SLOW_RATE, 'ceil', SLOW_RATE]);
  await tc(['filter', 'add', 'dev', 'eth0', 'parent', '1:', 'protocol', 'ip', 'prio', '1', 'u32', 'match', 'ip', 'dst', STORE_NET, 'flowid', '1:20']);
  return async () => void (await node.member.exec('tc', ['qdisc', 'del', 'dev', 'eth0', 'root'], { allowFail: true }));
}

const SLOW_RATE = '32kbit';
const LOSS = 'numgen random mod 100 < 30 drop';

/** Applies one fault; `pick` chooses among equal targets (seeded). */
export async function applyFault(kind: FaultKind, ctx: FaultContext, pick: <T>(xs: readonly T[]) => T): Promise<Fault> {
  const node = pick(ctx.nodes.filter((n) => n.daemon));
  switch (kind) {
    case 'partition-oneway':
    case 'partition-twoway': {
      const undo = await storeRules(node, 'drop', kind === 'partition-twoway' ? 'drop' : undefined);
      return { kind, target: node.name, heal: undo };
    }
    case 'loss': {
      const undo = await storeRules(node, LOSS, LOSS);
      return { kind, target: node.name, heal: undo };
    }
    case 'delay': {
      const undo = await slowLink(node);
      return { kind, target: node.name, heal: undo };
    }
    case 'node-kill': {
      await killNode(node);
      return { kind, target: node.name, heal: () => restartNode(node, ctx.dir, ctx.config, ctx.redis.url) };
    }
    case 'primary-kill': {
      const old = await ctx.redis.primary();
      await ctx.redis.kill(old);
      return {
        kind, target: old,
        async heal() {
          const now = await ctx.redis.awaitFailover(old, 15_000);
          // Back empty, as a replica of the promoted one (the sentinels would turn it anyway).
          await ctx.redis.start(old, now);
        },
      };
    }
    case 'redis-restart': {
      const victim = pick(REDIS_NODES);
      const primary = await ctx.redis.primary();
      const other = REDIS_NODES.find((n) => n !== victim) ?? victim;
      await ctx.redis.kill(victim);
      // Back at once and empty: faster than the sentinels' down-after, so a primary stays primary.
      await ctx.redis.start(victim, victim === primary ? victim : other);
      return { kind, target: `${victim}${victim === primary ? ' (primary)' : ''}`, heal: () => Promise.resolve() };
    }
  }
}
