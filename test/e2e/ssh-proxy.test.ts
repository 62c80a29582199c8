// `knockgw ssh` as a real ssh ProxyCommand (Debian's openssh-client) from a client behind a
// masquerading IPv4 NAT with native IPv6, to a listener in the lab: a dual-stack name, an
// IPv4-only name and an IPv6-only name. Each time the knock goes through the relay over the
// family of the address ssh will use (and an fwknop SPA packet goes to that address), and ssh reaches the listener (its banner) through the pipe.
// Names come from /etc/netns/<client>/hosts, which `ip netns exec` mounts over /etc/hosts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, rm, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { canConnect, MAIN, startDaemon, startSshLike, tempDir, waitReady } from '../helpers/gateway.ts';
import { requireRoot, sh } from '../helpers/netns.ts';
import { createNatLab } from '../helpers/nat-lab.ts';
import { HMAC_KEY_BASE64, KEY_BASE64, spaYaml } from '../helpers/spa.ts';

const PORT = 8443;
const statusSchema = z.object({ grants: z.array(z.object({ ip: z.string(), covers: z.string().optional() })) });

void test('ssh -o ProxyCommand="knockgw ssh %h %p …" knocks the exact family ssh uses and reaches the listener: dual-stack, IPv4-only, IPv6-only', async (t) => {
  if (!(await requireRoot(t))) return;
  const lab = await createNatLab({ nativeV6: true });
  const dir = await tempDir();
  const etc = `/etc/netns/${lab.client.ns}`;
  t.after(async () => {
    await lab.destroy();
    await dir.remove();
    await rm(etc, { recursive: true, force: true });
    await rmdir('/etc/netns').catch(() => undefined); // only when empty: ours alone
  });
  const { client, nat, server } = lab;
  await mkdir(etc, { recursive: true });
  await writeFile(join(etc, 'hosts'), `127.0.0.1 localhost\n${server.v4} dual.lab relay.lab v4.lab\n${server.v6} dual.lab relay.lab v6.lab\n`);

  const keyFile = join(dir.path, 'laptop.key.json');
  const entry = (await sh(process.execPath, [MAIN, 'keygen', '--id', 'laptop', '--door', 'openSSH', '--out', keyFile])).stdout;
  const keysFile = await dir.write('keys.json', `{"clients": [${entry}]}`);
  const config = await dir.write('knockgw.yaml', `interface: eth0
doors:
  - name: openSSH
    sequence: ["7000", "8000", "9000"]
    open: ["22/tcp"]
    ttl: 60
relay:
  keysFile: ${keysFile}
  listen: "[::]:${PORT}"
${spaYaml({ ttl: 60 })}`);
  const fwknoprc = await dir.write('fwknoprc', `[default]\nKEY_BASE64 ${KEY_BASE64}\nHMAC_KEY_BASE64 ${HMAC_KEY_BASE64}\n`);
  await waitReady(startSshLike(server));
  const control = join(dir.path, 'ctl.sock');
  const daemon = startDaemon(server, ['--config', config, '--state', join(dir.path, 'state.json'), '--control', control]);
  t.after(() => daemon.kill());
  await daemon.waitFor((e) => e.event === 'daemon.ready', 20_000, 'daemon.ready');

  const relayProxy = `${process.execPath} ${MAIN} ssh %h %p --relay http://relay.lab:${PORT} --key ${keyFile} --door openSSH`;
  const spaProxy = `${process.execPath} ${MAIN} ssh %h %p --spa ${fwknoprc}`;
  const ssh = (host: string, proxy = relayProxy) => client.exec('timeout', ['20', 'ssh', '-vv', '-F', '/dev/null', '-o', `ProxyCommand=${proxy}`, '-o', 'BatchMode=yes',
    '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'ConnectTimeout=15', `probe@${host}`, 'true'], { allowFail: true });
  const grants = async () => statusSchema.parse(JSON.parse((await sh(process.execPath, [MAIN, 'status', '--json', '--control', control])).stdout)).grants.map((g) => g.covers ?? g.ip).sort();
  const revokeAll = async () => {
    await sh(process.execPath, [MAIN, 'revoke', nat.v4, '--control', control], { allowFail: true });
    await sh(process.execPath, [MAIN, 'revoke', client.v6, '--control', control], { allowFail: true });
  };

  for (const [name, want, family] of [['v4.lab', nat.v4, 4], ['v6.lab', 'fd00:198:18:1::/64', 6], ['dual.lab', undefined, 0]] as const) {
    await revokeAll();
    assert.equal(await canConnect(client, family === 6 ? server.v6 : server.v4, 22), false, `${name}: closed before`);
    const t0 = Date.now();
    const r = await ssh(name);
    const took = Date.now() - t0;
    assert.match(r.stderr, /remote software version knockgw-test/, `${name}: ssh read the listener's banner through knockgw ssh:\n${r.stderr.slice(-1500)}`);
    const knocked = /knockgw ssh: knocked through \S+ over IPv(\d): openSSH for (\S+)/.exec(r.stderr);
    assert.ok(knocked, `${name}: knockgw ssh says what it knocked`);
    const open = await grants();
    if (want) {
      assert.deepEqual(open, [want], `${name}: exactly the family ssh used is open`);
    } else {
      // Dual-stack: whichever address getaddrinfo put first, the knock went over that family.
      assert.equal(open.length, 1);
      assert.equal(open[0], knocked[1] === '6' ? 'fd00:198:18:1::/64' : nat.v4, 'dual.lab: the grant is for the family ssh connected over');
    }
    t.diagnostic(`${name}: ssh → banner through knockgw ssh in ${took} ms (${/answered \d+ ms after the knock/.exec(r.stderr)?.[0] ?? ''}), grant ${open.join(', ')}`);
  }

  // SPA (fwknop's own packet format, keys from an fwknoprc): the packet asks for its source address,
  // so it opens exactly the address ssh then connects from (one address on IPv6 for SPA).
  for (const [name, want] of [['v4.lab', nat.v4], ['v6.lab', client.v6]] as const) {
    await revokeAll();
    const r = await ssh(name, spaProxy);
    assert.match(r.stderr, /remote software version knockgw-test/, `SPA ${name}: ssh reached the listener:\n${r.stderr.slice(-1500)}`);
    assert.match(r.stderr, /knockgw ssh: sent SPA for tcp\/22/);
    assert.deepEqual(await grants(), [want], `SPA ${name}: exactly the address ssh used`);
    t.diagnostic(`SPA ${name}: ${/answered \d+ ms after the knock/.exec(r.stderr)?.[0] ?? ''}, grant ${want}`);
  }
});
