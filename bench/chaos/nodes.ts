// The three gateway nodes of the chaos lab: the real `knockgw daemon`, each in its own namespace
// guarding port 22 (an SSH-like listener) on eth0, all on the Sentinel-managed store.
import { startDaemon, startSshLike, waitReady, type RunningDaemon } from '../../test/helpers/gateway.ts';
import type { Host } from '../../test/helpers/netns.ts';
import type { ChaosLab, Member } from './lab.ts';

export const NODES = ['gw1', 'gw2', 'gw3'] as const;
export type NodeName = (typeof NODES)[number];

/** Long grants end by revoke or close sequence; short ones expire (or are extended first). */
export const DOORS = {
  long: { sequence: [7000, 8000, 9000], close: [9000, 8000, 7000], ttlS: 30 },
  short: { sequence: [7100, 8100, 9100], ttlS: 5 },
} as const;

export const configYaml = (maxStalenessS: number): string => `interface: eth0
engine: pcap
ha: { maxStaleness: ${maxStalenessS} }
doors:
  - name: long
    sequence: [${DOORS.long.sequence.map((p) => `"${p}"`).join(', ')}]
    closeSequence: [${DOORS.long.close.map((p) => `"${p}"`).join(', ')}]
    seqTimeout: 5
    open: ["22/tcp"]
    ttl: ${DOORS.long.ttlS}
  - name: short
    sequence: [${DOORS.short.sequence.map((p) => `"${p}"`).join(', ')}]
    seqTimeout: 5
    open: ["22/tcp"]
    ttl: ${DOORS.short.ttlS}
`;

export interface GatewayNode {
  readonly name: NodeName;
  readonly member: Member;
  readonly control: string;
  /** Undefined while killed. */
  daemon: RunningDaemon | undefined;
  /** Every daemon this node ran, for the record's logs. */
  readonly lives: RunningDaemon[];
}

const asHost = (m: Member): Host => ({ ns: m.ns, v4: m.ip, v6: '', exec: (c, a, o) => m.exec(c, a, o), spawn: (c, a, o) => m.spawn(c, a, o) });

export async function startNode(lab: ChaosLab, name: NodeName, dir: string, config: string, store: string): Promise<GatewayNode> {
  const member = lab.member(name);
  await waitReady(startSshLike(asHost(member)));
  const node: GatewayNode = { name, member, control: `${dir}/${name}.sock`, daemon: undefined, lives: [] };
  await restartNode(node, dir, config, store);
  return node;
}

export async function restartNode(node: GatewayNode, dir: string, config: string, store: string): Promise<void> {
  const daemon = startDaemon(asHost(node.member), ['--config', config, '--store', store, '--node-id', node.name, '--control', node.control, '--state', `${dir}/${node.name}.json`]);
  node.lives.push(daemon);
  await daemon.waitFor((e) => e.event === 'daemon.ready', 30_000, `daemon.ready on ${node.name}`);
  // Live (a target for knocks, closes and revokes) once ready: a close knock sent to a daemon
  // still starting is never seen, and the grant it was meant to end is rightly still open.
  node.daemon = daemon;
}

/** kill -9: the kernel keeps its nft table (and the grants in it) until the restart. */
export async function killNode(node: GatewayNode): Promise<void> {
  const d = node.daemon;
  node.daemon = undefined;
  await d?.kill();
}
