// The two SPA servers under test, started one after the other in the same server namespace:
// Debian's fwknopd 2.6 (pcap + iptables) with its own default config — Debian's fwknopd.conf with
// only PCAP_INTF and the run directory set, Debian's access.conf with the keys filled in — and the
// knockgw daemon reading the same access.conf (nftables). Each stop() leaves the namespace's
// firewall as start() found it. fwknopd runs only inside the lab's namespace, never on the host.
import { chmod, copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { kgwError } from '../gateway/core/errors.ts';
import type { Host } from '../test/helpers/netns.ts';
import type { RunningDaemon } from '../test/helpers/gateway.ts';
import { FIXTURES } from '../test/helpers/spa.ts';
import { sleep } from './lib.ts';
import { launchKnockgw, stopProcess, type KnockSystem } from './systems.ts';

export type SpaSystemName = 'fwknopd' | 'knockgw';

export interface SpaSystem extends Omit<KnockSystem, 'name'> {
  readonly name: SpaSystemName;
  /** knockgw: the daemon, for its grant.open events. */
  readonly daemon?: RunningDaemon;
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
      await stopProcess(child);
      await server.exec('iptables', ['-F', 'INPUT'], { allowFail: true });
      await server.exec('iptables', ['-F', 'FWKNOP_INPUT'], { allowFail: true });
      await server.exec('iptables', ['-X', 'FWKNOP_INPUT'], { allowFail: true });
    },
  };
}

/** knockgw with fwknopd's own files (the same access.conf), nftables, a memory store. */
export async function startKnockgwSpa(server: Host, dir: string, iface: string): Promise<SpaSystem> {
  const { conf, access } = await fwknopFiles(dir, iface);
  const base = await launchKnockgw(server, dir, 'spa', ['--fwknop-access', access, '--fwknop-config', conf]);
  return { ...base, name: 'knockgw', label: 'knockgw SPA + nftables' };
}
