// The two SPA servers under test, started one after the other in the same server namespace:
// Debian's fwknopd 2.6 (pcap + iptables) with its own default config — Debian's fwknopd.conf with
// only PCAP_INTF and the run directory set, Debian's access.conf with the keys filled in — and the
// knockgw daemon reading the same access.conf (nftables). Each stop() leaves the namespace's
// firewall as start() found it. fwknopd runs only inside the lab's namespace, never on the host.
import { chmod, copyFile, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { kgwError } from '../gateway/core/errors.ts';
import type { Host } from '../test/helpers/netns.ts';
import { MAIN, startDaemon, type RunningDaemon } from '../test/helpers/gateway.ts';
import { FIXTURES } from '../test/helpers/spa.ts';
import { sleep } from './lib.ts';

export type SpaSystemName = 'fwknopd' | 'knockgw';

export interface SpaSystem {
  readonly name: SpaSystemName;
  readonly label: string;
  /** The daemon's pid (its children are found through /proc). */
  pid(): number;
  logLines(): Promise<number>;
  /** Removes an open grant so the next measurement starts closed. */
  forceClose(ip: string): Promise<void>;
  /** knockgw: the daemon, for its grant.open events. */
  readonly daemon?: RunningDaemon;
  stop(): Promise<void>;
}

export const SPA_PORT = 62201;

async function fwknopFiles(dir: string, iface: string): Promise<{ conf: string; access: string }> {
  const conf = join(dir, 'fwknopd.conf');
  const access = join(dir, 'access.conf');
  // Debian's files as installed (all defaults), plus where to sniff and where to keep its run files.
  await writeFile(conf, `${await readFile(join(FIXTURES, 'debian-fwknopd.conf'), 'utf8')}\nPCAP_INTF ${iface};\nFWKNOP_RUN_DIR ${dir};\n`);
  await copyFile(join(FIXTURES, 'debian-access-keys.conf'), access);
  // fwknopd warns about anything but 0600.
  await chmod(conf, 0o600);
  await chmod(access, 0o600);
  return { conf, access };
}

export async function startFwknopd(server: Host, dir: string, iface: string): Promise<SpaSystem> {
  const { conf, access } = await fwknopFiles(dir, iface);
  await server.exec('iptables', ['-A', 'INPUT', '-p', 'tcp', '--dport', '22', '-j', 'DROP']);
  const child: ChildProcess = server.spawn('fwknopd', ['-f', '-c', conf, '-a', access, '-d', join(dir, 'digest.cache'), '-p', join(dir, 'fwknopd.pid')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let lines = 0;
  let text = '';
  const count = (d: Buffer): void => {
    const s = d.toString();
    lines += s.split('\n').length - 1;
    if (text.length < 65536) text += s;
  };
  child.stdout?.on('data', count);
  child.stderr?.on('data', count);
  const deadline = Date.now() + 10_000;
  while (!/main event loop/.test(text)) {
    if (child.exitCode !== null) throw kgwError('KGW_INTERNAL', `fwknopd exited (${child.exitCode}): ${text.slice(-1000)}`);
    if (Date.now() > deadline) throw kgwError('KGW_INTERNAL', `bench: fwknopd did not start: ${text.slice(-1000)}`);
    await sleep(20);
  }
  return {
    name: 'fwknopd',
    label: 'fwknopd 2.6.10 (pcap + iptables)',
    pid: () => child.pid ?? 0,
    logLines: () => Promise.resolve(lines),
    async forceClose() {
      await server.exec('iptables', ['-F', 'FWKNOP_INPUT'], { allowFail: true });
    },
    async stop() {
      if (child.exitCode === null) {
        const gone = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([gone, sleep(3000)]);
        child.kill('SIGKILL');
      }
      await server.exec('iptables', ['-F', 'INPUT'], { allowFail: true });
      await server.exec('iptables', ['-F', 'FWKNOP_INPUT'], { allowFail: true });
      await server.exec('iptables', ['-X', 'FWKNOP_INPUT'], { allowFail: true });
    },
  };
}

/** knockgw with fwknopd's own files (the same access.conf), nftables, a memory store. */
export async function startKnockgwSpa(server: Host, dir: string, iface: string): Promise<SpaSystem> {
  const { conf, access } = await fwknopFiles(dir, iface);
  const control = join(dir, 'ctl-spa.sock');
  const state = join(dir, 'state-spa.json');
  const d = startDaemon(server, ['--fwknop-access', access, '--fwknop-config', conf, '--firewall', 'nftables', '--state', state, '--control', control]);
  try {
    await d.waitFor((e) => e.event === 'daemon.ready', 30_000, 'daemon.ready');
  } catch (err) {
    await d.kill();
    throw err;
  }
  return {
    name: 'knockgw',
    label: 'knockgw SPA + nftables',
    daemon: d,
    pid: () => d.child.pid ?? 0,
    logLines: () => Promise.resolve(d.events.length),
    async forceClose(ip) {
      await server.exec(process.execPath, [MAIN, 'revoke', ip, '--control', control], { allowFail: true });
    },
    async stop() {
      await d.stop();
      await server.exec('nft', ['delete', 'table', 'inet', 'knockgw'], { allowFail: true });
      await rm(state, { force: true });
      await rm(state.replace(/\.json$/, '.replay.json'), { force: true });
    },
  };
}
