// A throwaway copy of this machine's root for installing packages: an overlay over / whose
// writes land in a tmpfs, both mounted in a private mount namespace that a keeper process holds
// open inside a test's network namespace. dpkg, the maintainer scripts and the installed
// daemon run chrooted into it, so nothing reaches the host's /usr, /etc or firewall, and the
// whole root disappears with the keeper.
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Host } from './netns.ts';

export interface ThrowawayRoot {
  /** The root's path inside the mount namespace. */
  readonly path: string;
  /** Runs a command chrooted into the root (inside the host's network namespace). */
  run(argv: readonly string[], opts?: { input?: string; allowFail?: boolean }): Promise<{ stdout: string; stderr: string; code: number }>;
  /** Copies a host file into the root; resolves with its path inside the root. */
  copyIn(hostPath: string, name: string): Promise<string>;
  /** A launcher prefix for startDaemon: the command runs chrooted into the root. */
  readonly chroot: readonly string[];
  /** Files (and whiteouts of deleted files) the root holds that the host's / does not, relative to /. */
  changedFiles(): Promise<string[]>;
  destroy(): Promise<void>;
}

export async function throwawayRoot(host: Host): Promise<ThrowawayRoot> {
  const dir = await mkdtemp(join(tmpdir(), 'knockgw-root-'));
  const merged = `${dir}/merged`;
  // The tmpfs is mounted on `dir` inside the namespace only: the overlay's upper layer may not sit
  // under its lower layer (/), and a tmpfs mount is outside it.
  const setup = [
    'set -e',
    `mount -t tmpfs knockgw-root ${dir}`,
    `mkdir -p ${dir}/upper ${dir}/work ${merged}`,
    `mount -t overlay knockgw-root -o lowerdir=/,upperdir=${dir}/upper,workdir=${dir}/work ${merged}`,
    `mount --rbind /proc ${merged}/proc`,
    `mount --rbind /dev ${merged}/dev`,
    `mount --rbind /sys ${merged}/sys`,
    `mount -t tmpfs knockgw-run ${merged}/run`,
    'echo ready',
    'exec sleep 3600',
  ].join('\n');
  const keeper: ChildProcess = host.spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', setup], { stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let err = '';
    keeper.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    keeper.stdout?.once('data', () => resolve());
    keeper.once('exit', (code) => reject(new Error(`the throwaway root could not be mounted (exit ${code}): ${err}`)));
  });
  const pid = String(keeper.pid);
  const enter = ['-t', pid, '-m'];
  const chroot = ['nsenter', ...enter, 'chroot', merged];
  return {
    path: merged,
    chroot,
    run: (argv, opts) => host.exec('nsenter', [...enter, 'chroot', merged, ...argv], opts),
    async copyIn(hostPath, name) {
      await host.exec('nsenter', [...enter, 'cp', hostPath, `${merged}/tmp/${name}`]);
      return `/tmp/${name}`;
    },
    async changedFiles() {
      const r = await host.exec('nsenter', [...enter, 'find', `${dir}/upper`, '(', '-type', 'f', '-o', '-type', 'c', ')', '-printf', '%P\\n']);
      return r.stdout.split('\n').filter(Boolean).sort();
    },
    async destroy() {
      keeper.kill('SIGKILL');
      if (keeper.exitCode === null && keeper.signalCode === null) await new Promise((r) => keeper.once('exit', r));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
