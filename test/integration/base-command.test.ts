// `knockgw base` is what the boot unit runs before the network comes up: it must install the
// base rules and exit, with every backend, quickly — a oneshot that never exits hangs the boot.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLab, requireRoot, sh } from '../helpers/netns.ts';
import { GUIDE_KNOCKD_CONF, MAIN, tempDir } from '../helpers/gateway.ts';

for (const [firewall, engine] of [['nftables', 'kernel'], ['nftables', 'pcap'], ['iptables', 'pcap']] as const) {
  void test(`knockgw base --firewall ${firewall} --engine ${engine} installs the base and exits within 10 s`, async (t) => {
    if (!(await requireRoot(t))) return;
    const lab = await createLab(0);
    const dir = await tempDir();
    t.after(async () => {
      await lab.destroy();
      await dir.remove();
    });
    const conf = await dir.write('knockd.conf', GUIDE_KNOCKD_CONF);
    const started = Date.now();
    const r = await lab.server.exec('timeout', ['-s', 'KILL', '10', process.execPath, MAIN, 'base', '--knockd-config', conf, '--firewall', firewall, '--engine', engine], { allowFail: true });
    assert.equal(r.code, 0, `exit status ${r.code} after ${Date.now() - started} ms (137 = killed by the time limit): ${r.stderr}`);
    const rules = firewall === 'nftables' ? await lab.server.exec('nft', ['list', 'table', 'inet', 'knockgw']) : await lab.server.exec('iptables', ['-S', 'KNOCKGW']);
    assert.match(rules.stdout, /dport.*22|--dports 22/);
    const left = await sh('ip', ['netns', 'pids', lab.server.ns]);
    assert.equal(left.stdout.trim(), '', 'no helper process (nft -i, tcpdump) outlives the command');
  });
}
