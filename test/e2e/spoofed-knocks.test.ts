// Knocks the kernel itself would drop must not open anything, on either engine: a source equal
// to the gateway's own address, a loopback source arriving on the wire, and (pcap engine: it taps
// before the kernel checks) a TCP checksum that does not verify. Crafted with hping3 from a
// client namespace; a genuine knock afterwards still works, so the drops are not blindness.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { requireRoot, type Host } from '../helpers/netns.ts';
import { connectsWithin, guideDaemon } from '../helpers/gateway.ts';
import { tcpConnects } from '../helpers/tcp.ts';

async function hpingSequence(from: Host, target: string, extra: readonly string[]): Promise<void> {
  for (const port of [7000, 8000, 9000]) {
    await from.exec('hping3', ['-q', '-c', '1', '-S', '-p', String(port), ...extra, target], { allowFail: true });
  }
}

for (const engine of ['kernel', 'pcap'] as const) {
  void test(`[${engine}] spoofed own-address and loopback sources${engine === 'pcap' ? ' and bad checksums' : ''} open nothing; a real knock still does`, async (t: TestContext) => {
    if (!(await requireRoot(t))) return;
    const { lab, client: a, daemon: d } = await guideDaemon(t, ['--engine', engine]);
    await d.waitFor((e) => e.event === 'daemon.ready', 20_000, 'daemon.ready');

    await hpingSequence(a, lab.server.v4, ['-a', lab.server.v4]);
    await hpingSequence(a, lab.server.v4, ['-a', '127.0.0.1']);
    if (engine === 'pcap') await hpingSequence(a, lab.server.v4, ['--badcksum']);
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(d.events.filter((e) => e.event === 'grant.open' || e.event === 'knock.completed'), [], 'no crafted knock completed');
    assert.equal(d.events.filter((e) => e.event === 'knock.error').length, 0, 'and none caused an error');
    assert.equal(await tcpConnects(a, lab.server.v4, 22), false);
    const nft = await lab.server.exec('nft', ['list', 'set', 'inet', 'knockgw', 'allowed4']);
    assert.doesNotMatch(nft.stdout, /elements/, 'nothing in the kernel either');

    await a.exec('knock', [lab.server.v4, '7000', '8000', '9000']);
    assert.equal(await connectsWithin(a, lab.server.v4, 22), true, 'a genuine knock opens');
  });
}
