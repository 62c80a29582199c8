// A throwaway lab of network namespaces joined by veth pairs to a "server" namespace.
// Every namespace name carries this process's pid, and `destroy()` (registered with t.after)
// removes them all, so a failing test leaves nothing behind.
import { execFile, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export async function sh(cmd: string, args: readonly string[], opts: { input?: string; allowFail?: boolean } = {}): Promise<{ stdout: string; stderr: string; code: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    // A command that exits without reading stdin must not crash the test with EPIPE.
    child.stdin.on('error', () => undefined);
    child.on('close', (code) => {
      const c = code ?? -1;
      if (c !== 0 && !opts.allowFail) reject(new Error(`${cmd} ${args.join(' ')} exited ${c}: ${stderr.trim()}`));
      else resolve({ stdout, stderr, code: c });
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** True when this process can create network namespaces (root with CAP_NET_ADMIN). */
export async function canUseNetns(): Promise<boolean> {
  if (process.getuid?.() !== 0) return false;
  const probe = `kgwprobe${process.pid}`;
  try {
    await execFileP('ip', ['netns', 'add', probe]);
    await execFileP('ip', ['netns', 'del', probe]);
    return true;
  } catch {
    return false;
  }
}

/**
 * Tests that need root call this first: outside CI they skip with the reason; in CI (CI set)
 * they fail, because a skipped security test is a green lie.
 */
export async function requireRoot(t: { skip(msg: string): void }): Promise<boolean> {
  if (await canUseNetns()) return true;
  const why = 'needs root and network namespaces (run as root, e.g. sudo npm test)';
  if (process.env.CI) throw new Error(`CI is set but ${why}`);
  t.skip(why);
  return false;
}

let labCounter = 0;

export interface Host {
  readonly ns: string;
  readonly v4: string;
  readonly v6: string;
  /** Runs a command inside this namespace. */
  exec(cmd: string, args: readonly string[], opts?: { input?: string; allowFail?: boolean }): Promise<{ stdout: string; stderr: string; code: number }>;
  /** Spawns a long-running process inside this namespace; the lab kills it on destroy. */
  spawn(cmd: string, args: readonly string[], opts?: SpawnOptions): ChildProcess;
}

export interface Lab {
  readonly server: Host;
  readonly clients: readonly Host[];
  /** The server side interface name (inside the server namespace) facing client i. */
  serverIf(i: number): string;
  destroy(): Promise<void>;
}

/**
 * server namespace <-> one veth per client. Client i gets 198.18.0.(10+i) / fd00:198:18::(10+i)
 * on link i, the server answers on 198.18.0.1 / fd00:198:18::1 through a bridge so every client
 * shares one server interface (`br0`), like a LAN.
 */
export async function createLab(clientCount: number): Promise<Lab> {
  const id = `${process.pid}${labCounter++}`;
  const serverNs = `kgws${id}`;
  const clientNs = Array.from({ length: clientCount }, (_, i) => `kgwc${id}x${i}`);
  const children = new Set<ChildProcess>();
  const created: string[] = [];

  const makeHost = (ns: string, v4: string, v6: string): Host => ({
    ns,
    v4,
    v6,
    exec: (cmd, args, opts) => sh('ip', ['netns', 'exec', ns, cmd, ...args], opts),
    spawn: (cmd, args, opts) => {
      const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
      children.add(child);
      child.on('exit', () => children.delete(child));
      return child;
    },
  });

  const destroy = async (): Promise<void> => {
    for (const c of children) c.kill('SIGKILL');
    for (const ns of created.reverse()) {
      // Kill anything still running in it (a daemon a test forgot), then remove it.
      const pids = await sh('ip', ['netns', 'pids', ns], { allowFail: true });
      for (const pid of pids.stdout.split(/\s+/).filter(Boolean)) {
        try { process.kill(Number(pid), 'SIGKILL'); } catch { /* already gone */ }
      }
      await sh('ip', ['netns', 'del', ns], { allowFail: true });
    }
  };

  try {
    for (const ns of [serverNs, ...clientNs]) {
      await sh('ip', ['netns', 'add', ns]);
      created.push(ns);
      await sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    await sh('ip', ['-n', serverNs, 'link', 'add', 'br0', 'type', 'bridge']);
    await sh('ip', ['-n', serverNs, 'addr', 'add', '198.18.0.1/24', 'dev', 'br0']);
    await sh('ip', ['-n', serverNs, 'addr', 'add', 'fd00:198:18::1/64', 'dev', 'br0', 'nodad']);
    await sh('ip', ['-n', serverNs, 'link', 'set', 'br0', 'up']);
    for (const [i, ns] of clientNs.entries()) {
      const host = 10 + i;
      await sh('ip', ['link', 'add', `kgwv${id}x${i}`, 'netns', serverNs, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      await sh('ip', ['-n', serverNs, 'link', 'set', `kgwv${id}x${i}`, 'master', 'br0', 'up']);
      await sh('ip', ['-n', ns, 'addr', 'add', `198.18.0.${host}/24`, 'dev', 'eth0']);
      await sh('ip', ['-n', ns, 'addr', 'add', `fd00:198:18::${host}/64`, 'dev', 'eth0', 'nodad']);
      await sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    }
  } catch (err) {
    await destroy();
    throw err;
  }

  return {
    server: makeHost(serverNs, '198.18.0.1', 'fd00:198:18::1'),
    clients: clientNs.map((ns, i) => makeHost(ns, `198.18.0.${10 + i}`, `fd00:198:18::${10 + i}`)),
    serverIf: () => 'br0',
    destroy,
  };
}
