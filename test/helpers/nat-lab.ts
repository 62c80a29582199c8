// A client behind a masquerading NAT, in three namespaces (the topology of
// test/integration/relay-nat.test.ts, as a reusable lab that also carries IPv6):
//
//   client eth0 198.18.0.130/26, fd00:198:18:1::130/64 (default route via the NAT's lan0)
//     └─ nat lan0 198.18.0.129/26, fd00:198:18:1::1/64 | nat wan0 198.18.0.1/26, fd00:198:18::1/64 (masquerade out of wan0)
//          └─ server eth0 198.18.0.2/26, fd00:198:18::2/64 (no route back to the private side)
//
// So anything the server sees from the client comes from the NAT's public address. Names carry
// this process's pid; `destroy()` kills what runs inside and removes the namespaces.
import { spawn, type ChildProcess } from 'node:child_process';
import { sh, type Host } from './netns.ts';

export interface NatLab {
  /** The client on the private side; v4/v6 are its private addresses. */
  readonly client: Host;
  /** The NAT; v4/v6 are its public (wan0) addresses, the ones the server sees. */
  readonly nat: Host;
  /** The server; its interface is `eth0`. */
  readonly server: Host;
  destroy(): Promise<void>;
}

let counter = 0;

export interface NatLabOptions {
  /**
   * IPv6 routed, not translated (a carrier's native IPv6): the server sees the client's own
   * address and routes the client's /64 back through the NAT box; only IPv4 is masqueraded.
   */
  readonly nativeV6?: boolean;
}

export async function createNatLab(opts: NatLabOptions = {}): Promise<NatLab> {
  const id = `${process.pid}${counter++}`;
  const ns = { client: `kgwnc${id}`, nat: `kgwnn${id}`, server: `kgwns${id}` };
  const created: string[] = [];
  const children = new Set<ChildProcess>();

  const host = (name: string, v4: string, v6: string): Host => ({
    ns: name,
    v4,
    v6,
    exec: (cmd, args, opts) => sh('ip', ['netns', 'exec', name, cmd, ...args], opts),
    spawn: (cmd, args, opts) => {
      const child = spawn('ip', ['netns', 'exec', name, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
      children.add(child);
      child.on('exit', () => children.delete(child));
      return child;
    },
  });

  const destroy = async (): Promise<void> => {
    for (const c of children) c.kill('SIGKILL');
    for (const n of created.reverse()) {
      const pids = await sh('ip', ['netns', 'pids', n], { allowFail: true });
      for (const pid of pids.stdout.split(/\s+/).filter(Boolean)) {
        try { process.kill(Number(pid), 'SIGKILL'); } catch { /* already gone */ }
      }
      await sh('ip', ['netns', 'del', n], { allowFail: true });
    }
  };

  const ipn = (n: string, ...args: string[]) => sh('ip', ['-n', n, ...args]);
  try {
    for (const n of Object.values(ns)) {
      await sh('ip', ['netns', 'add', n]);
      created.push(n);
      await ipn(n, 'link', 'set', 'lo', 'up');
    }
    await sh('ip', ['link', 'add', 'eth0', 'netns', ns.client, 'type', 'veth', 'peer', 'name', 'lan0', 'netns', ns.nat]);
    await sh('ip', ['link', 'add', 'wan0', 'netns', ns.nat, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns.server]);
    const addrs: [string, string, string][] = [
      [ns.client, 'eth0', '198.18.0.130/26'], [ns.client, 'eth0', 'fd00:198:18:1::130/64'],
      [ns.nat, 'lan0', '198.18.0.129/26'], [ns.nat, 'lan0', 'fd00:198:18:1::1/64'],
      [ns.nat, 'wan0', '198.18.0.1/26'], [ns.nat, 'wan0', 'fd00:198:18::1/64'],
      [ns.server, 'eth0', '198.18.0.2/26'], [ns.server, 'eth0', 'fd00:198:18::2/64'],
    ];
    // nodad: the addresses are usable at once instead of after duplicate detection (~1-2 s).
    for (const [n, dev, a] of addrs) await ipn(n, 'addr', 'add', a, 'dev', dev, ...(a.includes(':') ? ['nodad'] : []));
    for (const [n, dev] of [[ns.client, 'eth0'], [ns.nat, 'lan0'], [ns.nat, 'wan0'], [ns.server, 'eth0']] as const) await ipn(n, 'link', 'set', dev, 'up');
    await ipn(ns.client, 'route', 'add', 'default', 'via', '198.18.0.129');
    await ipn(ns.client, '-6', 'route', 'add', 'default', 'via', 'fd00:198:18:1::1');
    // promote_secondaries: the NAT may change its public address (add the new one, drop the old).
    await sh('ip', ['netns', 'exec', ns.nat, 'sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1', 'net.ipv4.conf.all.promote_secondaries=1', 'net.ipv4.conf.wan0.promote_secondaries=1']);
    const which = opts.nativeV6 ? 'meta nfproto ipv4 ' : '';
    await sh('ip', ['netns', 'exec', ns.nat, 'nft', '-f', '-'], {
      input: `table inet kgwnat {\n  chain post {\n    type nat hook postrouting priority srcnat;\n    ${which}oifname "wan0" masquerade\n  }\n}\n`,
    });
    if (opts.nativeV6) await ipn(ns.server, '-6', 'route', 'add', 'fd00:198:18:1::/64', 'via', 'fd00:198:18::1');
  } catch (err) {
    await destroy();
    throw err;
  }

  return {
    client: host(ns.client, '198.18.0.130', 'fd00:198:18:1::130'),
    nat: host(ns.nat, '198.18.0.1', 'fd00:198:18::1'),
    server: host(ns.server, '198.18.0.2', 'fd00:198:18::2'),
    destroy,
  };
}
