// The live demo: two client "machines" and a server in network namespaces, the seed guide's
// knockd.conf unchanged, and port 22 going closed → open (for one client only) → closed.
// Everything it creates is removed on exit, also on Ctrl-C.
import { createLab, canUseNetns } from '../test/helpers/netns.ts';
import { startDaemon, startSshLike, waitReady, canConnect, tempDir, GUIDE_KNOCKD_CONF, MAIN } from '../test/helpers/gateway.ts';
import { prettyLine } from '../gateway/kit/log.ts';

const firewall = process.argv.includes('--iptables') ? 'iptables' : 'nftables';
const engine = process.argv.includes('--pcap') ? 'pcap' : 'auto';

if (!(await canUseNetns())) {
  process.stderr.write('demo: needs root and network namespaces: run `sudo scripts/demo.sh`\n');
  process.exit(1);
}

const say = (text: string): void => void process.stdout.write(`\x1b[1m▶ ${text}\x1b[0m\n`);
const lab = await createLab(2);
const dir = await tempDir();
const cleanup = async (): Promise<void> => {
  await lab.destroy();
  await dir.remove();
};
process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));

try {
  const [alice, bob] = lab.clients;
  if (!alice || !bob) throw new Error('lab has no clients');
  const conf = await dir.write('knockd.conf', GUIDE_KNOCKD_CONF);
  say(`server ${lab.server.v4} / ${lab.server.v6}; alice ${alice.v4}, bob ${bob.v4}; the guide's knockd.conf, firewall ${firewall}`);
  const sshd = startSshLike(lab.server);
  await waitReady(sshd);
  const daemon = startDaemon(lab.server, [
    '--knockd-config', conf, '--interface', lab.serverIf(0), '--firewall', firewall, '--engine', engine,
    '--state', `${dir.path}/state.json`, '--control', `${dir.path}/knockgw.sock`,
  ]);
  let shown = 0;
  const showLogs = (): void => {
    for (; shown < daemon.events.length; shown++) process.stdout.write(`   daemon: ${prettyLine(JSON.stringify(daemon.events[shown]))}\n`);
  };
  await daemon.waitFor((e) => e.event === 'daemon.ready', 15_000, 'daemon.ready');
  showLogs();

  const probe = async (who: typeof alice, name: string, addr: string): Promise<void> => {
    const open = await canConnect(who, addr, 22);
    process.stdout.write(`   ${name} → [${addr}]:22 ${open ? '\x1b[32mOPEN\x1b[0m' : '\x1b[31mclosed\x1b[0m'}\n`);
  };
  const knock = async (who: typeof alice, args: string[]): Promise<void> => {
    await who.exec(process.execPath, [MAIN, 'knock', ...args]);
  };

  say('before any knock: port 22 is closed for everyone');
  await probe(alice, 'alice', lab.server.v4);
  say('alice knocks 7000,8000,9000 (knockgw knock)');
  await knock(alice, [lab.server.v4, '7000', '8000', '9000']);
  await daemon.waitFor((e) => e.event === 'grant.open' && e.ip === alice.v4, 5000, 'grant.open');
  showLogs();
  await probe(alice, 'alice', lab.server.v4);
  await probe(bob, 'bob  ', lab.server.v4);
  say('bob knocks in the wrong order (8000,7000,9000): still closed');
  await knock(bob, [lab.server.v4, '8000', '7000', '9000']);
  await new Promise((r) => setTimeout(r, 300));
  await probe(bob, 'bob  ', lab.server.v4);
  say('alice knocks over IPv6 with the Debian `knock` client');
  await alice.exec('knock', ['-6', lab.server.v6, '7000', '8000', '9000']);
  await daemon.waitFor((e) => e.event === 'grant.open' && e.ip === alice.v6, 5000, 'grant.open v6');
  showLogs();
  await probe(alice, 'alice', lab.server.v6);
  say('alice knocks the close sequence 9000,8000,7000');
  await knock(alice, [lab.server.v4, '9000', '8000', '7000']);
  await daemon.waitFor((e) => e.event === 'grant.close' && e.ip === alice.v4, 5000, 'grant.close');
  showLogs();
  await probe(alice, 'alice', lab.server.v4);
  say('stopping the daemon (its rules stay: port 22 stays closed while it is down)');
  await daemon.stop();
  showLogs();
  sshd.kill();
  say('demo done; namespaces removed');
} finally {
  await cleanup();
}
