// A spoofed-source SYN flood on the first knock port (hping3, bounded in time, from a third
// namespace) while a legitimate client knocks: the knock still opens, on both engines, and the
// daemon's log stays bounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLab, requireRoot } from '../helpers/netns.ts';
import { connectsWithin, refusedWithin, GUIDE_KNOCKD_CONF, MAIN, startDaemon, startSshLike, tempDir, waitReady } from '../helpers/gateway.ts';

for (const engine of ['kernel', 'pcap'] as const) {
  void test(`[${engine}] a legitimate knock opens during a spoofed-source SYN flood, and the log stays bounded`, async (t) => {
    if (!(await requireRoot(t))) return;
    const lab = await createLab(2);
    const dir = await tempDir();
    t.after(async () => {
      await lab.destroy();
      await dir.remove();
    });
    const [legit, attacker] = lab.clients;
    assert.ok(legit && attacker);
    await waitReady(startSshLike(lab.server));
    const conf = await dir.write('knockd.conf', GUIDE_KNOCKD_CONF);
    const d = startDaemon(lab.server, ['--knockd-config', conf, '--interface', 'br0', '--engine', engine, '--state', `${dir.path}/s.json`, '--control', `${dir.path}/c.sock`]);
    t.after(() => d.kill());
    await d.waitFor((e) => e.event === 'daemon.ready', 20_000, 'daemon.ready');

    // Random spoofed sources from 198.18.0.0/24's neighbourhood never leave the lab: the
    // attacker's only link is the lab bridge. `timeout` bounds it whatever happens.
    const flood = attacker.spawn('timeout', ['6', 'hping3', '--rand-source', '-S', '-p', '7000', '-i', 'u60', '-q', lab.server.v4], { stdio: 'ignore' });
    t.after(() => flood.kill('SIGKILL'));
    await sleep(1500);
    let opened = 0;
    for (let i = 0; i < 3; i++) {
      await legit.exec(process.execPath, [MAIN, 'knock', lab.server.v4, '7000', '8000', '9000']);
      if (await connectsWithin(legit, lab.server.v4, 22, 3000)) opened++;
      await legit.exec(process.execPath, [MAIN, 'knock', lab.server.v4, '9000', '8000', '7000']);
      assert.equal(await refusedWithin(legit, lab.server.v4, 22, 3000), true, 'the close sequence works during the flood');
    }
    assert.equal(opened, 3, 'every legitimate knock opened during the flood');
    const lines = d.events.length;
    t.diagnostic(`${engine}: ${lines} log lines during the flood`);
    assert.ok(lines < 200, `the log stays bounded under a flood (${lines} lines)`);
  });
}
