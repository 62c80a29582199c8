// The harness's side of agent.ts: requests out on stdin, answers matched by id.
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import type { Member } from './lab.ts';

const AGENT = fileURLToPath(new URL('./agent.ts', import.meta.url));

export interface Agent {
  knock(from: string, to: string, ports: readonly number[]): Promise<void>;
  /** One handshake per pair, all at once; whether each completed within timeoutMs. */
  probe(pairs: readonly (readonly [string, string])[], timeoutMs: number): Promise<boolean[]>;
  close(): void;
}

export function startAgent(client: Member): Agent {
  const child = client.spawn(process.execPath, [AGENT], { stdio: ['pipe', 'pipe', 'pipe'] });
  let nextId = 1;
  const waiting = new Map<number, { resolve(v: { open?: boolean[]; error?: string }): void; reject(e: Error): void }>();
  let err = '';
  child.stderr?.on('data', (d: Buffer) => void (err = (err + d.toString()).slice(-2000)));
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const msg = JSON.parse(line) as { id: number; open?: boolean[]; error?: string };
    waiting.get(msg.id)?.resolve(msg);
    waiting.delete(msg.id);
  });
  child.once('exit', (code, signal) => {
    for (const w of waiting.values()) w.reject(new Error(`the chaos agent exited (${code ?? signal}): ${err}`));
    waiting.clear();
  });
  const ask = (req: object): Promise<{ open?: boolean[]; error?: string }> =>
    new Promise((resolve, reject) => {
      if (child.exitCode !== null) return reject(new Error(`the chaos agent is gone: ${err}`));
      const id = nextId++;
      waiting.set(id, { resolve, reject });
      child.stdin!.write(`${JSON.stringify({ id, ...req })}\n`);
    });
  return {
    async knock(from, to, ports) {
      const r = await ask({ op: 'knock', from, to, ports });
      if (r.error) throw new Error(`knock from ${from} to ${to} failed: ${r.error}`);
    },
    async probe(pairs, timeoutMs) {
      return (await ask({ op: 'probe', pairs, timeoutMs })).open ?? [];
    },
    close: () => void child.kill('SIGKILL'),
  };
}
