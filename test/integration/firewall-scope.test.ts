// Scoped grants on both host firewall backends, against real kernels: a grant for a network (a
// door's `scope`) admits every address inside it and nothing outside. nftables keeps them in
// interval sets with timeouts, iptables in hash:net,port ipsets (or commented rules without ipset).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLab, requireRoot, type Host } from '../helpers/netns.ts';
import { tcpConnects } from '../helpers/tcp.ts';
import { createHostFirewall } from '../../gateway/wiring/firewall.ts';
import { createLogger } from '../../gateway/kit/log.ts';
import { makeGrant } from '../../gateway/core/grant.ts';
import { desiredEntries, planFirewall } from '../../gateway/core/plan.ts';
import type { HostFirewall } from '../../gateway/ports.ts';

const logger = createLogger({ level: 'warn', format: 'json', destination: new Writable({ write: (_c, _e, done) => done() }) });
const SSH = [{ port: 22, proto: 'tcp' as const }];
const SERVER = `require('node:net').createServer((s) => s.end()).listen({ port: 22, host: '::' }, () => console.log('ready'));`;

const BACKENDS: readonly { label: string; make(ns: string): HostFirewall }[] = [
  { label: 'nftables', make: (ns) => createHostFirewall('nftables', { logger, netns: ns }) },
  { label: 'iptables+ipset', make: (ns) => createHostFirewall('iptables', { logger, netns: ns, useIpset: true }) },
  { label: 'iptables without ipset', make: (ns) => createHostFirewall('iptables', { logger, netns: ns, useIpset: false }) },
];

for (const backend of BACKENDS) {
  void test(`${backend.label}: a /64 (and a /28) grant admits two addresses of the prefix and refuses one outside it`, async (t) => {
    if (!(await requireRoot(t))) return;
    const lab = await createLab(3);
    const [a, b, outside] = lab.clients as [Host, Host, Host];
    // The third client also lives in a second subnet of the server: outside both scoped prefixes.
    await lab.server.exec('ip', ['addr', 'add', '198.18.1.1/24', 'dev', 'br0']);
    await lab.server.exec('ip', ['addr', 'add', 'fd00:198:19::1/64', 'dev', 'br0', 'nodad']);
    await outside.exec('ip', ['addr', 'add', '198.18.1.12/24', 'dev', 'eth0']);
    await outside.exec('ip', ['addr', 'add', 'fd00:198:19::12/64', 'dev', 'eth0', 'nodad']);
    const server = lab.server.spawn(process.execPath, ['-e', SERVER]);
    await new Promise<void>((resolve) => server.stdout?.once('data', () => resolve()));

    const fw = backend.make(lab.server.ns);
    t.after(() => lab.destroy());
    // Before the lab goes (t.after runs in order): the nft session lives in its namespace.
    t.after(() => fw.close?.());
    await fw.ensureBase(SSH);
    const now = Date.now();
    const common = { door: 'phone', ports: SSH, source: 'relay' as const, ttlMs: 600_000, nodeId: 'n', now };
    const v6 = makeGrant({ ...common, ip: a.v6, prefix: 64 });
    const v4 = makeGrant({ ...common, ip: a.v4, prefix: 28 });
    assert.equal(v6.ip, 'fd00:198:18::');
    assert.equal(v4.ip, '198.18.0.0');
    const wanted = desiredEntries([v4, v6], now);
    await fw.apply(planFirewall(wanted, await fw.list(), now));

    for (const host of [a, b]) {
      assert.equal(await tcpConnects(host, lab.server.v6, 22), true, `${host.v6} is inside fd00:198:18::/64`);
      assert.equal(await tcpConnects(host, lab.server.v4, 22), true, `${host.v4} is inside 198.18.0.0/28`);
    }
    assert.equal(await tcpConnects(outside, 'fd00:198:19::1', 22), false, 'fd00:198:19::12 is outside the /64');
    assert.equal(await tcpConnects(outside, '198.18.1.1', 22), false, '198.18.1.12 is outside the /28');

    // What the backend lists is what was planned: a second reconcile changes nothing.
    const listed = await fw.list();
    assert.deepEqual(listed.map((e) => `${e.ip}/${e.prefix}`).sort(), ['198.18.0.0/28', 'fd00:198:18::/64']);
    assert.deepEqual(planFirewall(wanted, listed, Date.now()), []);

    // Closing the grant closes the whole prefix.
    await fw.apply(planFirewall([], listed, Date.now()));
    assert.equal(await tcpConnects(b, lab.server.v6, 22), false, 'the /64 is closed again');
    assert.equal(await tcpConnects(b, lab.server.v4, 22), false, 'the /28 is closed again');
  });
}
